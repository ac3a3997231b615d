"""status and health: what state the server is in, and whether it works."""

from typing import Annotated

import typer

from mcp_lifecycle import handoff
from mcp_lifecycle.cli import render
from mcp_lifecycle.cli.commands import Commands
from mcp_lifecycle.cli.errors import JsonOption, command_flags, edge
from mcp_lifecycle.cli.hooks import start_command
from mcp_lifecycle.settings.flags import Flags


class ReportCommands(Commands):
    def register(self, app: typer.Typer) -> None:
        name = self.name
        app.command(
            "status",
            help="Is the server running, ours, and is its health snapshot fresh?\n\n"
            "Exit 0 running, 2 not running, 4 snapshot stale, 8 stale PID file.\n\n"
            f"Example: {name} status --json",
        )(edge(self.status))
        app.command(
            "health",
            help="Show the server's health; --probe checks it live (MCP handshake).\n\n"
            f"Example: {name} health --probe",
        )(edge(self.health))

    def status(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.control.status import observe

        report = observe(self.running(ctx)).status
        render.status(report, as_json)
        raise typer.Exit(int(report.exit_code))

    def health(
        self,
        ctx: typer.Context,
        probe: Annotated[
            bool, typer.Option("--probe", help="Run live checks now (MCP handshake, probes).")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        from mcp_lifecycle.control.health import (
            health_from_snapshot,
            probe_health,
            probe_stdio_health,
        )

        settings = self.running(ctx)
        if settings.transport == "stdio" and probe:
            # The private instance runs on the same flags, as a stdio server whatever they say.
            child = command_flags(ctx).merged(Flags({"transport": "stdio"}, {}))
            report = probe_stdio_health(
                settings, start_command(ctx), self.hooks.probes, handoff.to_env(child)
            )
        elif probe:
            report = probe_health(settings, self.hooks.probes)
        else:
            report = health_from_snapshot(settings)
        render.health(report, as_json)
        raise typer.Exit(int(report.exit_code))
