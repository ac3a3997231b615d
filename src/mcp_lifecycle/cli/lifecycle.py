"""start, stop, restart, reload: parse, call one domain function, render the result."""

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mcp_lifecycle import handoff
from mcp_lifecycle.cli import render
from mcp_lifecycle.cli.commands import Commands
from mcp_lifecycle.cli.errors import JsonOption, NoKillOption, TimeoutOption, command_flags, edge
from mcp_lifecycle.cli.hooks import start_command
from mcp_lifecycle.errors import (
    ConfigurationError,
    NotRunning,
    StalePid,
)
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.settings.flags import Flags

if TYPE_CHECKING:
    from mcp_lifecycle.control.start import StartResult
    from mcp_lifecycle.control.stop import StopResult
    from mcp_lifecycle.settings.model import MCPServerSettings

logger = logging.getLogger("mcp_lifecycle.cli")


class LifecycleCommands(Commands):
    def register(self, app: typer.Typer) -> None:
        name = self.name
        app.command(
            "start",
            help="Start the server, detached, and wait until it is ready.\n\n"
            f"Example: {name} start --timeout 20",
        )(edge(self.start))
        app.command(
            "stop",
            help="Stop the server: verify it is ours, SIGTERM, wait, then SIGKILL.\n\n"
            f"Example: {name} stop --timeout 5",
        )(edge(self.stop))
        app.command(
            "restart",
            help=f"Stop the server if it runs, then start it.\n\nExample: {name} restart",
        )(edge(self.restart))
        app.command(
            "reload",
            help="Make the running server read its settings again (SIGHUP) and wait until it "
            "did. Exit 0 applied; 5 the new settings are invalid (it keeps the old ones).\n\n"
            f"Example: {name} reload",
        )(edge(self.reload))

    # -- start ---------------------------------------------------------------------------

    def start(
        self,
        ctx: typer.Context,
        force: Annotated[
            bool, typer.Option("--force", help="Start even if a stale PID file says otherwise.")
        ] = False,
        foreground: Annotated[
            bool,
            typer.Option("--foreground", help="Run in this process (systemd, containers)."),
        ] = False,
        timeout: TimeoutOption = None,
        restart: Annotated[
            str | None,
            typer.Option(
                "--restart",
                metavar="POLICY",
                help="Bring the server back when it exits: never, on-failure or always "
                "(the restart_policy setting). Where systemd or Kubernetes run it, they restart.",
            ),
        ] = None,
        watch: Annotated[
            bool,
            typer.Option(
                "--watch",
                help="Restart the server when a Python file under PATH (default: the server's "
                "own package) changes. For development: never in a service definition.",
            ),
        ] = False,
        paths: Annotated[
            list[Path] | None, typer.Argument(metavar="[PATH]...", show_default=False)
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        if paths and not watch:
            raise ConfigurationError("PATH is only for --watch", hint="add --watch")
        flags = command_flags(ctx)
        if restart is not None:
            flags = flags.merged(
                Flags({"restart_policy": restart}, {"restart_policy": "--restart"})
            )
        watched = self._watched(paths) if watch else None
        if foreground:
            self._run_foreground(ctx, flags, force, watched)
            return
        settings = self.loader.load(flags)
        self.require_handler()
        result = self._start(ctx, settings, flags, timeout, force, watched)
        render.started(settings.server_name, result, as_json, cli=ctx.find_root().info_name)

    def _watched(self, paths: list[Path] | None) -> list[str]:
        """The folders `--watch` watches: those given, or the package of the start handler."""
        if paths:
            missing = [str(path) for path in paths if not path.exists()]
            if missing:
                raise ConfigurationError(f"cannot watch {', '.join(missing)}: no such path")
            return [str(path.resolve()) for path in paths]
        handler = self.require_handler()
        module = sys.modules.get(getattr(handler, "__module__", ""), None)
        source = getattr(module, "__file__", None)
        return [str(Path(source).resolve().parent) if source else os.getcwd()]

    def _start(
        self,
        ctx: typer.Context,
        settings: "MCPServerSettings",
        flags: Flags,
        timeout: float | None,
        force: bool,
        watch: list[str] | None = None,
    ) -> "StartResult":
        """Detached: the same CLI again in the foreground, on the same flags."""
        from mcp_lifecycle.control.start import start_detached

        return start_detached(
            LifecycleFields.of(settings),
            start_command(ctx),
            flags,
            timeout or settings.startup_timeout_seconds,
            force,
            watch,
        )

    def _run_foreground(
        self, ctx: typer.Context, flags: Flags, force: bool, watch: list[str] | None
    ) -> None:
        from mcp_lifecycle.control.start import ensure_startable
        from mcp_lifecycle.handoff import this_cli
        from mcp_lifecycle.server.bootstrap import run_foreground
        from mcp_lifecycle.server.pid1 import split_if_pid_1

        if os.getpid() == 1:  # in a container: an init in front, the server in a child
            split_if_pid_1(this_cli(sys.argv[1:]))
        handed = handoff.take_from_environ()
        if watch is not None:
            handed = handed._replace(watch=watch)
        flags = handed.flags.merged(flags)
        run_foreground(
            lambda: self.loader.load(flags),
            self.require_handler,
            handed,
            reload_handler=self.hooks.reload_handler,
            ensure_startable=lambda paths, action: ensure_startable(paths, action, force),
        )

    # -- stop and restart ----------------------------------------------------------------

    def stop(
        self,
        ctx: typer.Context,
        timeout: TimeoutOption = None,
        no_kill: NoKillOption = False,
        as_json: JsonOption = False,
    ) -> None:
        settings = self.running(ctx)
        result = self._stop(settings, timeout, no_kill)
        render.stopped(settings.server_name, result, as_json)

    def _stop(
        self, settings: LifecycleFields, timeout: float | None, no_kill: bool
    ) -> "StopResult":
        from mcp_lifecycle.control.stop import stop_server
        from mcp_lifecycle.files.paths import ServerPaths

        return stop_server(
            ServerPaths.for_settings(settings),
            timeout or settings.stop_timeout_seconds,
            kill=not no_kill,
            stop_handler=self.hooks.stop_handler,
        )

    def reload(
        self, ctx: typer.Context, timeout: TimeoutOption = None, as_json: JsonOption = False
    ) -> None:
        from mcp_lifecycle.control.reload import reload_server
        from mcp_lifecycle.files.paths import ServerPaths

        settings = self.running(ctx)
        result = reload_server(
            ServerPaths.for_settings(settings), timeout or settings.stop_timeout_seconds
        )
        render.reloaded(settings.server_name, result, as_json)

    def restart(
        self,
        ctx: typer.Context,
        timeout: TimeoutOption = None,
        no_kill: NoKillOption = False,
        as_json: JsonOption = False,
    ) -> None:
        settings = self.settings(ctx)
        self.require_handler()
        stopped: StopResult | str
        try:
            stopped = self._stop(LifecycleFields.of(settings), timeout, no_kill)
        except (NotRunning, StalePid) as exc:
            stopped = exc.message  # nothing ran: a note, not an error
        started = self._start(ctx, settings, command_flags(ctx), timeout, force=False)
        render.restarted(settings.server_name, stopped, started, as_json)
