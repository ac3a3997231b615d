"""How the fleet commands print: a line per member, one table, or JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mcp_lifecycle.cli.render import bad, echo_json, good, health, warn

if TYPE_CHECKING:
    from mcp_lifecycle.control.health import HealthReport
    from mcp_lifecycle.fleet.operations import Outcome
    from mcp_lifecycle.fleet.report import Row


def outcomes(verb: str, results: list[Outcome], as_json: bool) -> None:
    """`verb` is what succeeded: "started", "stopped", "restarted"."""
    from mcp_lifecycle.control.start import StartResult

    if as_json:
        echo_json([_outcome_dict(result) for result in results])
        return
    for result in results:
        name = result.member.name
        if result.error is not None:
            error = result.error
            typer.echo(f"{bad('FAILED')} {name}: {error.message}", err=True)
            if error.hint:
                typer.echo(f"  hint: {error.hint}", err=True)
            tail = getattr(error, "log_tail", "")
            if tail:
                typer.echo(f"  last lines of its log:\n{_indent(tail)}", err=True)
        elif result.note is not None:
            typer.echo(f"{warn('-')} {name}: {result.note}")
        elif isinstance(result.done, StartResult):
            typer.echo(f"{good(verb)} {name} (PID {result.done.pid}) at {result.done.url}")
        elif result.done is not None:
            typer.echo(f"{good(verb)} {name} (PID {result.done.pid})")


def _outcome_dict(result: Outcome) -> dict[str, object]:
    from mcp_lifecycle.control.start import StartResult

    data: dict[str, object] = {"server": result.member.name, "ok": result.ok}
    if result.note is not None:
        data["note"] = result.note
    if result.done is not None:
        data["pid"] = result.done.pid
        if isinstance(result.done, StartResult):
            data["url"] = result.done.url
    if result.error is not None:
        data["error"] = result.error.message
        data["exit_code"] = int(result.error.exit_code)
        data["hint"] = result.error.hint
        data["log_tail"] = getattr(result.error, "log_tail", "") or None
    return data


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def table(rows: list[Row], as_json: bool) -> None:
    if as_json:
        echo_json([row.as_dict() for row in rows])
        return
    typer.echo(
        f"{'NAME':20} {'STATE':12} {'PID':>7} {'UPTIME':>8} {'RESTARTS':>8} {'CPU%':>6} "
        f"{'RSS':>8}  URL"
    )
    for row in rows:
        status = row.status
        running = status is not None and status.running
        pid = str(status.pid) if running and status and status.pid else "-"
        uptime = status.uptime_seconds if status else None
        restarts = status.restarts if status else None
        typer.echo(
            f"{row.name:20} {row.state:12} {pid:>7} {_seconds(uptime):>8} "
            f"{'-' if restarts is None else restarts:>8} "
            f"{'-' if row.cpu_percent is None else f'{row.cpu_percent:.1f}':>6} "
            f"{_size(row.rss_bytes):>8}  {row.url or '-'}"
        )
    for row in rows:
        if row.elsewhere:
            typer.echo(f"{warn('note:')} {row.name} runs, but {row.elsewhere}")
        elif row.access_note:
            typer.echo(f"{warn('note:')} {row.name} {row.access_note}")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.0f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1048576:.1f}M"


def member_health(report: HealthReport, remote: bool, as_json: bool) -> None:
    headline = None
    if remote:
        headline = f"{report.status.server} runs elsewhere, at {report.status.url}; probed it."
    health(report, as_json, headline)
