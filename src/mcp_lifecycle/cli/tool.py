"""The `mcp-lifecycle` command: what spans servers (each server's own CLI manages itself)."""

from pathlib import Path
from typing import Annotated

import typer

from mcp_lifecycle.cli import render
from mcp_lifecycle.cli.errors import JsonOption, LifecycleGroup, edge
from mcp_lifecycle.cli.fleet import register as register_fleet

app = typer.Typer(
    cls=LifecycleGroup,
    name="mcp-lifecycle",
    help="Run and look after MCP servers, yours or any other: the fleet declared in "
    "mcp-lifecycle.yaml (or a client's config, with --file), and every server you run.\n\n"
    "Exit codes: 0 ok, 1 error, 2 not running, 3 already running, 4 unhealthy, "
    "5 configuration or usage error, 6 permission, 7 timeout, 8 stale PID file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",  # no -f: that is `logs -f` (follow)
            metavar="PATH",
            help="The fleet file (default: mcp-lifecycle.yaml here); also a client's JSON "
            "config as it is (.mcp.json, claude_desktop_config.json, .vscode/mcp.json).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    from mcp_lifecycle.logs import configure_logging

    ctx.meta["fleet_file"] = str(file) if file else None
    configure_logging("DEBUG" if verbose else "WARNING")


register_fleet(app)


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
