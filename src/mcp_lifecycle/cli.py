"""The Typer edge: the factory, the commands, rendering, and the one place where exceptions
become messages and exit codes. Domain modules never import this one."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from mcp_lifecycle.errors import (
    ConfigurationError,
    LifecycleError,
    NotRunning,
    ServerFailed,
    StalePid,
)
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.settings import MCPServerSettings, load_settings

logger = logging.getLogger("mcp_lifecycle.cli")

_F = TypeVar("_F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=0.1, help="Seconds to wait (default: from settings)."),
]


_CLICK_USAGE_EXIT = 2


class _LifecycleGroup(TyperGroup):
    """Usage errors exit 5 (CONFIGURATION_ERROR), never 2: scripts read 2 as "not running"."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except TyperException as exc:
            _remap_usage_error(exc)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TyperException as exc:
            _remap_usage_error(exc)
            raise


def _remap_usage_error(exc: TyperException) -> None:
    # Typer's usage errors (unknown option, bad value, missing argument) carry Click's exit 2.
    if exc.exit_code == _CLICK_USAGE_EXIT:
        exc.exit_code = int(ExitCode.CONFIGURATION_ERROR)


class MCPServerCLIFactory:
    """Builds the standard lifecycle CLI for one MCP server.

    >>> factory = MCPServerCLIFactory("my-server", start_handler=run)
    >>> app = factory.create_app()   # a typer.Typer; add your own @app.command()s
    """

    def __init__(
        self,
        server_name: str,
        settings: MCPServerSettings | type[MCPServerSettings] | None = None,
        start_handler: Callable[[], None] | None = None,
        stop_handler: Callable[[int], None] | None = None,
        *,
        reload_handler: Callable[[MCPServerSettings], None] | None = None,
    ) -> None:
        self.server_name = server_name
        if isinstance(settings, MCPServerSettings):
            self.settings_cls: type[MCPServerSettings] = type(settings)
            # Values the author set in code sit just above the defaults: YAML, environment and
            # flags still override them.
            self._code_defaults = settings.model_dump(exclude_unset=True, exclude={"server_name"})
        else:
            self.settings_cls = settings or MCPServerSettings
            self._code_defaults = {}
        self.start_handler = start_handler
        self.stop_handler = stop_handler
        self.reload_handler = reload_handler
        self.probes: dict[str, Callable[[], bool | str | None]] = {}

    def add_probe(self, name: str, probe: Callable[[], bool | str | None]) -> None:
        """Register a check that `health --probe` runs (in the CLI process). It returns True or
        None when healthy, False or a message when not, or raises."""
        self.probes[name] = probe

    def probe(self, name: str) -> Callable[[_F], _F]:
        def register(fn: _F) -> _F:
            self.add_probe(name, fn)
            return fn

        return register

    def load_settings(self, overrides: dict[str, Any] | None = None) -> MCPServerSettings:
        return load_settings(self.settings_cls, self.server_name, overrides, self._code_defaults)

    def create_app(self) -> typer.Typer:
        app = typer.Typer(
            cls=_LifecycleGroup,
            name=self.server_name,
            help=f"Lifecycle commands for the {self.server_name} MCP server.\n\n"
            "Exit codes: 0 ok, 1 error, 2 not running, 3 already running, 4 unhealthy, "
            "5 configuration or usage error, 6 permission, 7 timeout, 8 stale PID file.",
            no_args_is_help=True,
            add_completion=False,
            pretty_exceptions_enable=False,
        )
        _Commands(self).register(app)
        return app


def _overrides(ctx: Any) -> dict[str, Any]:
    root = ctx.find_root()
    return dict(root.obj or {})


def _edge(fn: _F) -> _F:
    """Map domain exceptions to a one-line message and their exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except LifecycleError as exc:
            _fail(exc.message, exc.hint, int(exc.exit_code), as_json, exc)
        except KeyboardInterrupt:
            _fail("interrupted", None, int(ExitCode.GENERAL_ERROR), as_json, None)
        except Exception as exc:
            logger.debug("unexpected error", exc_info=True)
            _fail(
                f"unexpected {type(exc).__name__}: {exc}",
                "run again with -v for details, and report it if it persists",
                int(ExitCode.GENERAL_ERROR),
                as_json,
                None,
            )
        return None

    return wrapper  # type: ignore[return-value]


def _fail(message: str, hint: str | None, code: int, as_json: bool, exc: Exception | None) -> None:
    tail = exc.log_tail if isinstance(exc, ServerFailed) else ""
    if as_json:
        payload: dict[str, Any] = {"error": message, "exit_code": code}
        if hint:
            payload["hint"] = hint
        if tail:
            payload["log_tail"] = tail
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(f"Error: {message}", err=True)
        if tail:
            typer.echo("Last lines of the server log:", err=True)
            for line in tail.splitlines():
                typer.echo(f"  | {line}", err=True)
        if hint:
            typer.echo(f"Hint: {hint}", err=True)
    raise typer.Exit(code)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _start_subcommand(ctx: typer.Context) -> list[str]:
    """The argv that reaches our `start` from the root, wherever the author mounted us."""
    names: list[str] = []
    current: Any = ctx
    while current is not None and current.parent is not None:
        names.append(current.info_name or "")
        current = current.parent
    names.reverse()
    return [*names[:-1], "start", "--foreground"]


class _Commands:
    def __init__(self, factory: MCPServerCLIFactory) -> None:
        self.factory = factory

    def settings(self, ctx: typer.Context) -> MCPServerSettings:
        return self.factory.load_settings(_overrides(ctx))

    def register(self, app: typer.Typer) -> None:
        name = self.factory.server_name
        app.callback()(self.root)
        app.command(
            "start",
            help=f"Start the server, detached, and wait until it is ready.\n\n"
            f"Example: {name} start --timeout 20",
        )(_edge(self.start))
        app.command(
            "stop",
            help=f"Stop the server: verify it is ours, SIGTERM, wait, then SIGKILL.\n\n"
            f"Example: {name} stop --timeout 5",
        )(_edge(self.stop))
        app.command(
            "restart",
            help=f"Stop the server if it runs, then start it.\n\nExample: {name} restart",
        )(_edge(self.restart))
        app.command(
            "status",
            help=f"Is the server running, ours, and is its health snapshot fresh?\n\n"
            f"Exit 0 running, 2 not running, 4 snapshot stale, 8 stale PID file.\n\n"
            f"Example: {name} status --json",
        )(_edge(self.status))
        app.command(
            "health",
            help=f"Show the server's health; --probe checks it live (MCP handshake).\n\n"
            f"Example: {name} health --probe",
        )(_edge(self.health))

    def root(
        self,
        ctx: typer.Context,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", help="Debug logging (also for the server).")
        ] = False,
        log_level: Annotated[
            str | None,
            typer.Option("--log-level", help="Log level: DEBUG, INFO, WARNING, ERROR, CRITICAL."),
        ] = None,
    ) -> None:
        level = "DEBUG" if verbose else log_level
        ctx.obj = {"log_level": level} if level else {}
        from mcp_lifecycle.logs import configure_logging

        try:
            configure_logging((level or "WARNING").upper())
        except ValueError:
            raise typer.BadParameter(
                f"unknown log level {log_level!r}", param_hint="--log-level"
            ) from None

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
            self._run_foreground(ctx, force)
            return
        from mcp_lifecycle.launcher import start_detached

        settings = self.settings(ctx)
        self._require_handler()
        result = start_detached(
            settings,
            _python_command(ctx),
            _overrides(ctx),
            timeout or settings.startup_timeout_seconds,
            force,
        )
        if as_json:
            _echo_json(
                {
                    "pid": result.pid,
                    "url": result.url,
                    "log_file": str(result.log_path),
                    "note": result.stale_note,
                }
            )
            return
        if result.stale_note:
            typer.echo(f"Note: {result.stale_note}")
        typer.echo(f"Started {settings.server_name} (PID {result.pid}); it is ready.")
        if result.url:
            typer.echo(f"  URL: {result.url}")
        typer.echo(f"  Log: {result.log_path}")
        typer.echo(f"Next: `{ctx.find_root().info_name} status`, or `stop` to end it.")

    def _require_handler(self) -> Callable[[], None]:
        if self.factory.start_handler is None:
            raise ConfigurationError(
                f"{self.factory.server_name} has no start handler",
                hint="pass start_handler= to MCPServerCLIFactory",
            )
        return self.factory.start_handler

    def _run_foreground(self, ctx: typer.Context, force: bool) -> None:
        from mcp_lifecycle.launcher import OVERRIDES_ENV, clear_for_start, paths_for
        from mcp_lifecycle.logs import configure_logging
        from mcp_lifecycle.runtime import READY_FD_ENV, ServerRuntime

        inherited = json.loads(os.environ.pop(OVERRIDES_ENV, "{}") or "{}")
        ready_fd_text = os.environ.pop(READY_FD_ENV, None)
        overrides = {**inherited, **_overrides(ctx)}
        settings = self.factory.load_settings(overrides)
        handler = self._require_handler()
        configure_logging(
            settings.log_level,
            settings.log_file,
            settings.json_logs,
            max_bytes=settings.log_max_bytes,
            backup_count=settings.log_backup_count,
        )
        if ready_fd_text is None:
            # A detached start already did this under the start lock.
            from mcp_lifecycle.files import ensure_cache_root

            ensure_cache_root(settings.resolved_cache_root)
            note = clear_for_start(paths_for(settings), settings.stale_pid_action, force)
            if note:
                logger.warning("%s", note)
        runtime = ServerRuntime(
            settings,
            handler,
            reload_settings=lambda: self.factory.load_settings(overrides),
            reload_handler=self.factory.reload_handler,
            ready_fd=int(ready_fd_text) if ready_fd_text else None,
        )
        runtime.run()

    def stop(
        self,
        ctx: typer.Context,
        timeout: TimeoutOption = None,
        no_kill: Annotated[
            bool, typer.Option("--no-kill", help="Never SIGKILL; exit 7 if it does not stop.")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        from mcp_lifecycle.launcher import paths_for, stop_server

        settings = self.settings(ctx)
        result = stop_server(
            paths_for(settings),
            timeout or settings.stop_timeout_seconds,
            kill=not no_kill,
            stop_handler=self.factory.stop_handler,
        )
        if as_json:
            _echo_json(
                {"pid": result.pid, "forced": result.forced, "seconds": round(result.seconds, 3)}
            )
            return
        how = " (killed: it did not stop in time)" if result.forced else ""
        typer.echo(
            f"Stopped {settings.server_name} (PID {result.pid}) in {result.seconds:.2f}s{how}."
        )

    def restart(
        self,
        ctx: typer.Context,
        timeout: TimeoutOption = None,
        no_kill: Annotated[
            bool, typer.Option("--no-kill", help="Never SIGKILL; exit 7 if it does not stop.")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        from mcp_lifecycle.launcher import paths_for, start_detached, stop_server

        settings = self.settings(ctx)
        self._require_handler()
        stopped: dict[str, Any] = {}
        try:
            result = stop_server(
                paths_for(settings),
                timeout or settings.stop_timeout_seconds,
                kill=not no_kill,
                stop_handler=self.factory.stop_handler,
            )
            stopped = {"pid": result.pid, "forced": result.forced}
        except (NotRunning, StalePid) as exc:
            stopped = {"note": exc.message}
        started = start_detached(
            settings,
            _python_command(ctx),
            _overrides(ctx),
            timeout or settings.startup_timeout_seconds,
        )
        if as_json:
            _echo_json({"stopped": stopped, "started": {"pid": started.pid, "url": started.url}})
            return
        if "pid" in stopped:
            typer.echo(f"Stopped {settings.server_name} (PID {stopped['pid']}).")
        else:
            typer.echo(f"Note: {stopped['note']}")
        typer.echo(f"Started {settings.server_name} (PID {started.pid}); it is ready.")
        if started.url:
            typer.echo(f"  URL: {started.url}")

    def status(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.health import server_status

        settings = self.settings(ctx)
        report, _ = server_status(settings)
        code = _status_code(report.condition, report.snapshot_fresh)
        if as_json:
            _echo_json({**report.as_dict(), "exit_code": int(code)})
            raise typer.Exit(int(code))
        typer.echo(_status_text(report))
        raise typer.Exit(int(code))

    def health(
        self,
        ctx: typer.Context,
        probe: Annotated[
            bool, typer.Option("--probe", help="Run live checks now (MCP handshake, probes).")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        from mcp_lifecycle.health import health_from_snapshot, probe_health

        settings = self.settings(ctx)
        report = (
            probe_health(settings, self.factory.probes) if probe else health_from_snapshot(settings)
        )
        status = report.status
        if not status.running:
            code = _status_code(status.condition, False)
        else:
            code = ExitCode.SUCCESS if report.healthy else ExitCode.HEALTH_CHECK_FAILED
        if as_json:
            _echo_json({**report.as_dict(), "exit_code": int(code)})
            raise typer.Exit(int(code))
        typer.echo(_status_text(status))
        for check in report.checks:
            mark = "ok  " if check.ok else "FAIL"
            typer.echo(f"  [{mark}] {check.name}: {check.detail}")
        if status.running:
            verdict = "healthy" if report.healthy else "UNHEALTHY"
            typer.echo(f"{settings.server_name} is {verdict}.")
            if not probe and not report.checks:
                typer.echo("Run `health --probe` for live checks.")
        raise typer.Exit(int(code))


def _python_command(ctx: typer.Context) -> list[str]:
    from mcp_lifecycle.launcher import python_command

    return python_command(sys.argv[0], _start_subcommand(ctx))


def _status_code(condition: str, fresh: bool) -> ExitCode:
    if condition == "not running":
        return ExitCode.SERVER_NOT_RUNNING
    if condition in ("stale", "unverified"):
        return ExitCode.STALE_PID
    return ExitCode.SUCCESS if fresh else ExitCode.HEALTH_CHECK_FAILED


def _status_text(report: Any) -> str:
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
    lines = [
        f"{name} is running (PID {report.pid}, state {report.state or 'unknown'}, {age_text})."
    ]
    if report.url:
        lines.append(f"  URL: {report.url}")
    if not report.snapshot_fresh:
        lines.append(
            f"  The health snapshot is stale (older than {report.ttl_seconds:g}s): "
            "the server may be hung."
        )
    return "\n".join(lines)
