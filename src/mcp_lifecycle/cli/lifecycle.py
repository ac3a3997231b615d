"""start, stop, restart, status, health: parse, call one domain function, render the result."""

import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mcp_lifecycle import handoff
from mcp_lifecycle.cli.errors import (
    JsonOption,
    NoKillOption,
    TimeoutOption,
    bad,
    command_flags,
    echo_json,
    edge,
    fail,
    good,
    warn,
)
from mcp_lifecycle.cli.hooks import Commands
from mcp_lifecycle.errors import (
    LifecycleError,
    NotRunning,
    ServerFailed,
    StalePid,
)
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.settings.flags import Flags

if TYPE_CHECKING:
    from mcp_lifecycle.control.health import StatusReport
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
        as_json: JsonOption = False,
    ) -> None:
        if foreground:
            try:
                self._run_foreground(ctx, force)
            except LifecycleError as exc:
                # Never on stdout, even with --json: for a stdio server it is the protocol.
                tail = exc.log_tail if isinstance(exc, ServerFailed) else ""
                fail(exc.message, exc.hint, int(exc.exit_code), False, tail)
            return
        settings = self.settings(ctx)
        self.require_handler()
        result = self._start(ctx, settings, timeout, force)
        if as_json:
            echo_json(
                {
                    "pid": result.pid,
                    "url": result.url,
                    "log_file": str(result.log_path),
                    "note": result.stale_note,
                }
            )
            return
        if result.stale_note:
            typer.echo(f"{warn('Note:')} {result.stale_note}")
        typer.echo(f"Started {settings.server_name} (PID {result.pid}); it is {good('ready')}.")
        if result.url:
            typer.echo(f"  URL: {result.url}")
        typer.echo(f"  Log: {result.log_path}")
        typer.echo(f"Next: `{ctx.find_root().info_name} status`, or `stop` to end it.")

    def _start(
        self, ctx: typer.Context, settings: "MCPServerSettings", timeout: float | None, force: bool
    ) -> "StartResult":
        """Detached: the same CLI again in the foreground, on the same flags."""
        from mcp_lifecycle.control.start import start_detached

        return start_detached(
            LifecycleFields.of(settings),
            _start_command(ctx),
            command_flags(ctx),
            timeout or settings.startup_timeout_seconds,
            force,
        )

    def _run_foreground(self, ctx: typer.Context, force: bool) -> None:
        from mcp_lifecycle.control.argv import this_cli
        from mcp_lifecycle.control.start import ensure_startable
        from mcp_lifecycle.server.bootstrap import run_foreground
        from mcp_lifecycle.server.pid1 import split_if_pid_1

        if os.getpid() == 1:  # in a container: an init in front, the server in a child
            split_if_pid_1(this_cli(sys.argv[1:]))
        handed = handoff.take_from_environ()
        flags = handed.flags.merged(command_flags(ctx))
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
        if as_json:
            echo_json(
                {"pid": result.pid, "forced": result.forced, "seconds": round(result.seconds, 3)}
            )
            return
        how = warn(" (killed: it did not stop in time)") if result.forced else ""
        typer.echo(
            f"Stopped {settings.server_name} (PID {result.pid}) in {result.seconds:.2f}s{how}."
        )

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
        if as_json:
            echo_json({"pid": result.pid, "reloaded_at": result.reloaded_at})
            return
        typer.echo(f"Reloaded {settings.server_name} (PID {result.pid}) in {result.seconds:.2f}s.")

    def restart(
        self,
        ctx: typer.Context,
        timeout: TimeoutOption = None,
        no_kill: NoKillOption = False,
        as_json: JsonOption = False,
    ) -> None:
        settings = self.settings(ctx)
        self.require_handler()
        stopped: dict[str, Any]
        try:
            result = self._stop(LifecycleFields.of(settings), timeout, no_kill)
            stopped = {"pid": result.pid, "forced": result.forced}
        except (NotRunning, StalePid) as exc:
            stopped = {"note": exc.message}
        started = self._start(ctx, settings, timeout, force=False)
        if as_json:
            echo_json({"stopped": stopped, "started": {"pid": started.pid, "url": started.url}})
            return
        if "pid" in stopped:
            typer.echo(f"Stopped {settings.server_name} (PID {stopped['pid']}).")
        else:
            typer.echo(f"{warn('Note:')} {stopped['note']}")
        typer.echo(f"Started {settings.server_name} (PID {started.pid}); it is {good('ready')}.")
        if started.url:
            typer.echo(f"  URL: {started.url}")

    # -- status and health ---------------------------------------------------------------

    def status(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.control.health import server_status

        settings = self.running(ctx)
        report, _ = server_status(settings)
        code = status_code(report.condition, report.snapshot_fresh)
        if as_json:
            echo_json({**report.as_dict(), "exit_code": int(code)})
        else:
            typer.echo(status_text(report))
        raise typer.Exit(int(code))

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
                settings,
                _start_command(ctx),
                self.hooks.probes,
                handoff.to_env(child),
            )
        elif probe:
            report = probe_health(settings, self.hooks.probes)
        else:
            report = health_from_snapshot(settings)
        status = report.status
        if report.stdio:
            code = ExitCode.SUCCESS if report.healthy else ExitCode.HEALTH_CHECK_FAILED
        elif not status.running:
            code = status_code(status.condition, False)
        else:
            code = ExitCode.SUCCESS if report.healthy else ExitCode.HEALTH_CHECK_FAILED
        if as_json:
            echo_json({**report.as_dict(), "exit_code": int(code)})
            raise typer.Exit(int(code))
        typer.echo(
            f"{settings.server_name} speaks MCP over stdio; probed a private instance."
            if report.stdio
            else status_text(status)
        )
        for check in report.checks:
            mark = good("ok  ") if check.ok else bad("FAIL")
            typer.echo(f"  [{mark}] {check.name}: {check.detail}")
        if status.running or report.stdio:
            verdict = good("healthy") if report.healthy else bad("UNHEALTHY")
            typer.echo(f"{settings.server_name} is {verdict}.")
            if not probe and not report.checks:
                typer.echo("Run `health --probe` for live checks.")
        raise typer.Exit(int(code))


def _start_subcommand(ctx: Any) -> list[str]:
    """The argv that reaches our `start` from the root, wherever the author mounted us."""
    names: list[str] = []
    current = ctx
    while current is not None and current.parent is not None:
        names.append(current.info_name or "")
        current = current.parent
    names.reverse()
    return [*names[:-1], "start", "--foreground"]


def _start_command(ctx: Any) -> list[str]:
    from mcp_lifecycle.control.argv import this_cli

    return this_cli(_start_subcommand(ctx))


def status_code(condition: str, fresh: bool) -> ExitCode:
    if condition == "not running":
        return ExitCode.SERVER_NOT_RUNNING
    if condition in ("stale", "unverified"):
        return ExitCode.STALE_PID
    return ExitCode.SUCCESS if fresh else ExitCode.HEALTH_CHECK_FAILED


def status_text(report: "StatusReport") -> str:
    name = report.server
    if report.condition == "not running":
        return f"{name} is not running. Start it with `start`."
    if report.condition == "stale":
        return (
            f"{name} is not running, but a stale PID file remains: {report.reason}. "
            "`start` cleans it up."
        )
    if report.condition == "unverified":
        return f"{name}: {report.reason}. Nothing will be signalled."
    age = report.snapshot_age_seconds
    age_text = "no snapshot" if age is None else f"snapshot {age:.1f}s old"
    state = report.state or "unknown"
    lines = [f"{name} is {good('running')} (PID {report.pid}, state {state}, {age_text})."]
    if report.url:
        lines.append(f"  URL: {report.url}")
    if report.loop_blocked_seconds is not None:
        lines.append(
            warn(
                f"  Its event loop has not turned for {report.loop_blocked_seconds:.0f}s: "
                "something blocks it (a sync call in an async tool?); it serves nothing."
            )
        )
    elif not report.snapshot_fresh:
        lines.append(
            warn(
                f"  The health snapshot is stale (older than {report.ttl_seconds:g}s): "
                "the server may be hung."
            )
        )
    return "\n".join(lines)
