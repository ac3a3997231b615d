"""The `mcp-lifecycle` command: what spans servers (each server's own CLI manages itself)."""

from pathlib import Path
from typing import Annotated

import typer

from mcp_lifecycle.cli import render
from mcp_lifecycle.cli.errors import JsonOption, LifecycleGroup, edge

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

    render.servers(list_servers(state_dir), as_json, str(state_dir or state_root()))


def main() -> None:
    app()
