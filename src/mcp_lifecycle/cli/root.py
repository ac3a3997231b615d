"""The options every command shares (given before the command): logging and settings flags.

No `from __future__ import annotations` in the modules that define commands: Typer would have
to evaluate every string annotation at each run.
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from mcp_lifecycle.settings.flags import Flags, remember_invocation


def root_options(
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
    flags = Flags()
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
    ctx.call_on_close(remember_invocation(flags))
    from mcp_lifecycle.logs import LOG_LEVELS, configure_logging

    if level is not None and level.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"unknown log level {level!r}", param_hint="--log-level")
    # The CLI itself stays quiet unless asked; the server's level is a setting.
    configure_logging((level or "WARNING").upper())
