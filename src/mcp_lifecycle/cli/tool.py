"""The `mcp-lifecycle` command: what spans servers (each server's own CLI manages itself)."""

from pathlib import Path
from typing import Annotated

import typer

from mcp_lifecycle.cli.errors import JsonOption, LifecycleGroup, echo_json, edge

app = typer.Typer(
    cls=LifecycleGroup,
    name="mcp-lifecycle",
    help="Look across the MCP servers that mcp-lifecycle manages for you.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Look across the MCP servers that mcp-lifecycle manages for you."""
    from mcp_lifecycle.logs import configure_logging

    configure_logging("DEBUG" if verbose else "WARNING")


@app.command("ls")
@edge
def list_command(
    as_json: JsonOption = False,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Where servers register (default: per-user state)."),
    ] = None,
) -> None:
    """Your servers: state, PID, URL, uptime, snapshot age. Those running (with any cache
    root) and those that ever started under your state directory.

    With --state-dir, only the servers in that folder.

    Example: mcp-lifecycle ls --json
    """
    from mcp_lifecycle.control.discovery import list_servers
    from mcp_lifecycle.files.paths import state_root

    entries = list_servers(state_dir)
    if as_json:
        echo_json([entry.as_dict() for entry in entries])
        return
    if not entries:
        typer.echo(f"No servers found (none running, none under {state_dir or state_root()}).")
        return
    header = f"{'SERVER':24} {'STATE':12} {'PID':>8} {'UPTIME':>9} {'AGE':>7}  URL"
    typer.echo(header)
    for entry in entries:
        state = entry.state or entry.condition
        pid = str(entry.pid) if entry.pid and entry.condition == "running" else "-"
        uptime = f"{entry.uptime_seconds:.0f}s" if entry.uptime_seconds is not None else "-"
        age = (
            f"{entry.snapshot_age_seconds:.1f}s" if entry.snapshot_age_seconds is not None else "-"
        )
        typer.echo(
            f"{entry.server:24} {state:12} {pid:>8} {uptime:>9} {age:>7}  {entry.url or '-'}"
        )


def main() -> None:
    app()
