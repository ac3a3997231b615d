"""config, doctor, version, logs: the operator's commands."""

from typing import Annotated

import typer

from mcp_lifecycle.cli import render
from mcp_lifecycle.cli.commands import Commands
from mcp_lifecycle.cli.errors import JsonOption, command_flags, edge
from mcp_lifecycle.errors import NotRunning


class OperatorCommands(Commands):
    def register(self, app: typer.Typer) -> None:
        name = self.name
        app.command(
            "config",
            help="Show every effective setting and where its value came from.\n\n"
            f"Example: {name} config --json",
        )(edge(self.config))
        app.command(
            "doctor",
            help="Check settings, files, permissions, the port and dependencies; say how to "
            f"fix what is wrong.\n\nExit 0 unless a check is an error.\n\nExample: {name} doctor",
        )(edge(self.doctor))
        app.command(
            "version",
            help=f"Show the versions of the server, mcp-lifecycle and the MCP SDK."
            f"\n\nExample: {name} version --json",
        )(edge(self.version))
        app.command(
            "logs",
            help="Show the detached server's log; --follow keeps printing new lines.\n\n"
            f"Example: {name} logs --lines 100 --follow",
        )(edge(self.logs))

    def config(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        resolved = self.resolved(ctx)
        settings = resolved.settings
        rows = {}
        for name in type(settings).model_fields:
            source = resolved.source(name)
            rows[name] = {
                "value": getattr(settings, name),
                "source": source.kind,
                "from": str(source),
            }
        rows["cache_root"]["effective"] = str(settings.resolved_cache_root)
        rows["heartbeat_seconds"]["effective"] = settings.heartbeat_interval
        if as_json:
            render.echo_json({"server": settings.server_name, "settings": rows})
            return
        width = max(len(name) for name in rows)
        for name, row in rows.items():
            value = row.get("effective", row["value"])
            shown = "(none)" if value is None else value
            typer.echo(f"{name:<{width}}  {shown}  {render.faint('# ' + row['from'])}")

    def doctor(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.control.doctor import Diagnosis, diagnose

        flags = command_flags(ctx)
        diagnosis = Diagnosis(diagnose(lambda: self.loader.load(flags)))
        code = int(diagnosis.exit_code)
        render.findings(diagnosis.findings, diagnosis.ok, code, as_json)
        raise typer.Exit(code)

    def version(self, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.control.doctor import versions

        found = versions()
        server = self.hooks.server_version or found.get(self.name)
        data = {
            "server": self.name,
            "server_version": server,
            "mcp_lifecycle": found["mcp-lifecycle"],
            "mcp_sdk": found["mcp"],
            "python": found["python"],
        }
        if as_json:
            render.echo_json(data)
            return
        typer.echo(f"{self.name} {server or '(version unknown)'}")
        typer.echo(f"mcp-lifecycle {found['mcp-lifecycle']}")
        typer.echo(f"mcp (SDK) {found['mcp'] or 'not installed'}")
        typer.echo(f"python {found['python']}")

    def logs(
        self,
        ctx: typer.Context,
        lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many lines.")] = 50,
        follow: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C ends).")
        ] = False,
    ) -> None:
        from mcp_lifecycle.files.logtail import follow as follow_log
        from mcp_lifecycle.files.logtail import last_lines
        from mcp_lifecycle.files.paths import ServerPaths

        settings = self.running(ctx)
        path = ServerPaths.for_settings(settings).log
        if not path.exists():
            raise NotRunning(f"no log at {path}", hint="the log is written by a detached `start`")
        for line in last_lines(path, lines):
            typer.echo(line)
        if follow:
            try:
                for line in follow_log(path):
                    typer.echo(line)
            except KeyboardInterrupt:
                return
