"""MCPServerCLIFactory: the standard lifecycle CLI for one MCP server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mcp_lifecycle.cli.edge import LifecycleGroup, Overrides
from mcp_lifecycle.settings import MCPServerSettings, ResolvedSettings, resolve_settings

_F = TypeVar("_F", bound=Callable[..., Any])

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 error, 2 not running, 3 already running, 4 unhealthy, "
    "5 configuration or usage error, 6 permission, 7 timeout, 8 stale PID file."
)


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
        server_version: str | None = None,
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
        self.server_version = server_version
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

    def resolve_settings(self, flags: Overrides | None = None) -> ResolvedSettings:
        flags = flags or Overrides()
        return resolve_settings(
            self.settings_cls, self.server_name, flags.values, self._code_defaults, flags.flags
        )

    def load_settings(self, flags: Overrides | dict[str, Any] | None = None) -> MCPServerSettings:
        """The effective settings: flags > MCP_SERVER_* > settings/local.yaml >
        settings/<server>.yaml > code > defaults."""
        if isinstance(flags, dict):
            flags = Overrides(dict(flags), {name: f"--set {name}" for name in flags})
        return self.resolve_settings(flags).settings

    def create_app(self) -> typer.Typer:
        from mcp_lifecycle.cli.lifecycle import LifecycleCommands
        from mcp_lifecycle.cli.operator import OperatorCommands

        app = typer.Typer(
            cls=LifecycleGroup,
            name=self.server_name,
            help=f"Lifecycle commands for the {self.server_name} MCP server.\n\n{EXIT_CODES_HELP}",
            no_args_is_help=True,
            add_completion=False,
            pretty_exceptions_enable=False,
        )
        app.callback()(_root)
        LifecycleCommands(self).register(app)
        OperatorCommands(self).register(app)
        return app


def _root(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging (the server's too).")
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL."),
    ] = None,
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--text-logs", help="Log one JSON object a line."),
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Also log to this file (size-rotated).")
    ] = None,
    cache_root: Annotated[
        Path | None,
        typer.Option("--cache-root", help="Where the PID file, lock, snapshot and log live."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="The HTTP host to serve on.")] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="The HTTP port to serve on.", min=1, max=65535)
    ] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Set any setting, e.g. --set health_ttl_seconds=30 (repeatable).",
        ),
    ] = None,
) -> None:
    flags = Overrides()
    for item in set_values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        name = key.strip().replace("-", "_")
        flags.set(name, value, f"--set {name}")
    level = "DEBUG" if verbose else log_level
    named: list[tuple[str, Any, str]] = [
        ("log_level", level, "--verbose" if verbose else "--log-level"),
        ("json_logs", json_logs, "--json-logs"),
        ("log_file", log_file, "--log-file"),
        ("cache_root", cache_root, "--cache-root"),
        ("host", host, "--host"),
        ("port", port, "--port"),
    ]
    for name, value, flag in named:
        if value is not None:
            flags.set(name, value, flag)
    ctx.obj = flags
    from mcp_lifecycle.logs import LOG_LEVELS, configure_logging

    if level is not None and level.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"unknown log level {level!r}", param_hint="--log-level")
    # The CLI itself stays quiet unless asked; the server's level is a setting.
    configure_logging((level or "WARNING").upper())
