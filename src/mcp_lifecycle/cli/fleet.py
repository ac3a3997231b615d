"""The fleet commands of the `mcp-lifecycle` tool: servers we did not write, declared in
`mcp-lifecycle.yaml` or a client's config (`--file`)."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mcp_lifecycle.cli import fleet_render
from mcp_lifecycle.cli.errors import JsonOption, OutputOption, TimeoutOption, edge
from mcp_lifecycle.cli.render import echo_json
from mcp_lifecycle.errors import ConfigurationError, NotRunning

if TYPE_CHECKING:
    from mcp_lifecycle.fleet.members import Member
    from mcp_lifecycle.fleet.operations import Outcome

Names = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[NAME]...", help="Servers of the fleet file (default: all).", show_default=False
    ),
]
Name = Annotated[str, typer.Argument(metavar="NAME", help="A server of the fleet file.")]


def fleet_file(ctx: typer.Context) -> Path | None:
    given = ctx.find_root().meta.get("fleet_file")
    return Path(given) if given else None


def _members(ctx: typer.Context, names: list[str] | None, starting: bool = False) -> list[Member]:
    from mcp_lifecycle.fleet.members import members
    from mcp_lifecycle.fleet.spec import find_fleet_file, read_fleet

    fleet = read_fleet(find_fleet_file(fleet_file(ctx)))
    chosen = members(fleet, names, starting=starting)
    if not chosen:
        raise ConfigurationError(f"{fleet.path} declares no servers")
    return chosen


def _finish(results: list[Outcome]) -> None:
    failed = [result.error for result in results if result.error is not None]
    if failed:
        raise typer.Exit(int(failed[0].exit_code))


def register(app: typer.Typer) -> None:
    app.command(
        "up",
        help="Start the fleet's servers (or those named), in parallel; each counts once it "
        "answers MCP. Exit non-zero if any failed (its log tail is shown).\n\n"
        "Example: mcp-lifecycle up --file .mcp.json",
    )(edge(up))
    app.command(
        "down",
        help="Stop the fleet's servers (or those named): verified, SIGTERM, wait, SIGKILL.\n\n"
        "Example: mcp-lifecycle down time",
    )(edge(down))
    app.command(
        "restart",
        help="Stop a server of the fleet, then start it.\n\nExample: mcp-lifecycle restart git",
    )(edge(restart))
    app.command(
        "status",
        help="One table: state, PID, uptime, restarts, CPU (average since it started), memory "
        "and URL of each server.\n\n"
        "Exit 0 when all run and are fresh; else the first problem's code (2 not running, 4 "
        "stale, 8 stale PID file).\n\nExample: mcp-lifecycle status --json",
    )(edge(status))
    app.command(
        "health",
        help="A server's health; --probe checks it live (an MCP handshake).\n\n"
        "Example: mcp-lifecycle health time --probe",
    )(edge(health))
    app.command(
        "logs",
        help="The last lines of a server's log, or of all (each line prefixed with its name).\n\n"
        "Example: mcp-lifecycle logs --follow",
    )(edge(logs))
    app.command(
        "client-config",
        help="What MCP clients should use instead of starting the servers themselves: the "
        "mcpServers block with each running server's URL (and bearer token).\n\n"
        "Example: mcp-lifecycle client-config --output .mcp.shared.json",
    )(edge(client_config))


def up(
    ctx: typer.Context,
    names: Names = None,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    from mcp_lifecycle.fleet import operations

    results = operations.up(_members(ctx, names, starting=True), timeout)
    fleet_render.outcomes("started", results, as_json)
    _finish(results)


def down(
    ctx: typer.Context,
    names: Names = None,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    from mcp_lifecycle.fleet import operations

    results = operations.down(_members(ctx, names), timeout)
    fleet_render.outcomes("stopped", results, as_json)
    _finish(results)


def restart(
    ctx: typer.Context, name: Name, timeout: TimeoutOption = None, as_json: JsonOption = False
) -> None:
    from mcp_lifecycle.fleet import operations

    results = operations.restart(_members(ctx, [name], starting=True), timeout)
    fleet_render.outcomes("restarted", results, as_json)
    _finish(results)


def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    from mcp_lifecycle.fleet.report import rows

    table = rows(_members(ctx, [name] if name else None))
    fleet_render.table(table, as_json)
    codes = [int(row.exit_code) for row in table if int(row.exit_code)]
    raise typer.Exit(codes[0] if codes else 0)


def health(
    ctx: typer.Context,
    name: Name,
    probe: Annotated[
        bool, typer.Option("--probe", help="Check it live now (MCP handshake).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    from mcp_lifecycle.fleet.report import health as member_health

    (member,) = _members(ctx, [name])
    report = member_health(member, probe)
    fleet_render.member_health(report, not member.entry.started_by_us, as_json)
    raise typer.Exit(int(report.exit_code))


def logs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", show_default=False)] = None,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many lines of each.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C ends).")
    ] = False,
) -> None:
    from mcp_lifecycle.files.logtail import last_lines
    from mcp_lifecycle.files.paths import ServerPaths

    chosen = [m for m in _members(ctx, [name] if name else None) if m.entry.started_by_us]
    logs = {m.name: ServerPaths.for_settings(m.fields).log for m in chosen}
    present = {n: path for n, path in logs.items() if path.exists()}
    if not present:
        raise NotRunning(
            "no log yet: none of these servers has started", hint="run `mcp-lifecycle up`"
        )
    prefix = name is None
    width = max(len(n) for n in present)
    for server, path in present.items():
        for line in last_lines(path, lines):
            typer.echo(f"{server:{width}} | {line}" if prefix else line)
    if follow:
        try:
            _follow_all(present, width if prefix else None)
        except KeyboardInterrupt:
            return


def _follow_all(paths: dict[str, Path], width: int | None) -> None:
    """Every log at once, interleaved as the lines come."""
    from mcp_lifecycle.files.logtail import follow

    lines: queue.Queue[str] = queue.Queue()
    stop = threading.Event()

    def read(server: str, path: Path) -> None:
        for line in follow(path, should_stop=stop.is_set):
            lines.put(f"{server:{width}} | {line}" if width is not None else line)

    readers = [threading.Thread(target=read, args=item, daemon=True) for item in paths.items()]
    for reader in readers:
        reader.start()
    try:
        while True:
            typer.echo(lines.get())
    finally:
        stop.set()


def client_config(
    ctx: typer.Context, as_json: JsonOption = False, output: OutputOption = None
) -> None:
    from mcp_lifecycle.cli.access import PASTE_WHERE
    from mcp_lifecycle.fleet.report import client_config as config_of
    from mcp_lifecycle.fleet.spec import find_fleet_file
    from mcp_lifecycle.transports.access import save_client_config

    config = config_of(_members(ctx, None))
    if not config["mcpServers"]:
        raise NotRunning("none of the fleet's servers runs", hint="run `mcp-lifecycle up` first")
    if output is not None:
        save_client_config(config, output, keep=find_fleet_file(fleet_file(ctx)))
        typer.echo(f"Wrote {output} (mode 600: it holds the bridged servers' tokens).")
        return
    if not as_json:
        typer.echo(PASTE_WHERE, err=True)
    echo_json(config)
