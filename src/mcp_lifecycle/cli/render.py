"""Every report the CLI prints, as text for people or as JSON for scripts, and every error.

Commands hand a report (and its exit code) here; nothing else in the CLI formats output.
Errors and hints go to stderr, except with --json, where they are the JSON on stdout.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mcp_lifecycle.cli.output import echo, style

if TYPE_CHECKING:
    from mcp_lifecycle.control.doctor import Finding
    from mcp_lifecycle.control.health import HealthReport
    from mcp_lifecycle.control.reload import ReloadResult
    from mcp_lifecycle.control.start import StartResult
    from mcp_lifecycle.control.status import Status
    from mcp_lifecycle.control.stop import StopResult


def good(text: str) -> str:
    return style(text, fg="green")


def bad(text: str) -> str:
    return style(text, fg="red", bold=True)


def faint(text: str) -> str:
    return style(text, dim=True)


def warn(text: str) -> str:
    return style(text, fg="yellow")


def echo_json(data: Any) -> None:
    echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def error(message: str, hint: str | None, code: int, as_json: bool, tail: str = "") -> None:
    """Print an error (with the last lines of the server's log, when there are some)."""
    if as_json:
        payload: dict[str, Any] = {"error": message, "exit_code": code}
        if hint:
            payload["hint"] = hint
        if tail:
            payload["log_tail"] = tail
        echo(json.dumps(payload, indent=2))
        return
    echo(f"{bad('Error:')} {message}", err=True)
    if tail:
        echo("Last lines of the server log:", err=True)
        for line in tail.splitlines():
            echo(f"  | {line}", err=True)
    if hint:
        echo(f"{warn('Hint:')} {hint}", err=True)


def started(name: str, result: StartResult, as_json: bool, cli: str | None = None) -> None:
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
        echo(f"{warn('Note:')} {result.stale_note}")
    echo(f"Started {name} (PID {result.pid}); it is {good('ready')}.")
    if result.url:
        echo(f"  URL: {result.url}")
    echo(f"  Log: {result.log_path}")
    if cli:
        echo(f"Next: `{cli} status`, or `stop` to end it.")


def stopped(name: str, result: StopResult, as_json: bool) -> None:
    if as_json:
        echo_json({"pid": result.pid, "forced": result.forced, "seconds": round(result.seconds, 3)})
        return
    how = warn(" (killed: it did not stop in time)") if result.forced else ""
    echo(f"Stopped {name} (PID {result.pid}) in {result.seconds:.2f}s{how}.")


def restarted(name: str, stopped: StopResult | str, started: StartResult, as_json: bool) -> None:
    """`stopped` is what the stop did, or why there was nothing to stop."""
    if as_json:
        echo_json(
            {
                "stopped": {"note": stopped}
                if isinstance(stopped, str)
                else {"pid": stopped.pid, "forced": stopped.forced},
                "started": {"pid": started.pid, "url": started.url},
            }
        )
        return
    if isinstance(stopped, str):
        echo(f"{warn('Note:')} {stopped}")
    else:
        echo(f"Stopped {name} (PID {stopped.pid}).")
    echo(f"Started {name} (PID {started.pid}); it is {good('ready')}.")
    if started.url:
        echo(f"  URL: {started.url}")


def reloaded(name: str, result: ReloadResult, as_json: bool) -> None:
    if as_json:
        echo_json({"pid": result.pid, "reloaded_at": result.reloaded_at})
        return
    echo(f"Reloaded {name} (PID {result.pid}) in {result.seconds:.2f}s.")


def status(report: Status, as_json: bool) -> None:
    if as_json:
        echo_json({**report.as_dict(), "exit_code": int(report.exit_code)})
    else:
        echo(status_text(report))


def status_text(report: Status) -> str:
    name = report.server
    if report.condition == "not running":
        if report.restarts is not None and report.reason:
            return f"{name} is not running: {report.reason}. Start it with `start`."
        return f"{name} is not running. Start it with `start`."
    if report.condition == "stale":
        return (
            f"{name} is not running, but a stale PID file remains: {report.reason}. "
            "`start` cleans it up."
        )
    if report.condition == "unverified":
        return f"{name}: {report.reason}. Nothing will be signalled."
    if report.state == "restarting":
        return warn(
            f"{name} is down: its supervisor (PID {report.supervisor_pid}) starts it again "
            f"shortly. {_restarts(report)}"
        )
    age = report.snapshot_age_seconds
    age_text = "no snapshot" if age is None else f"snapshot {age:.1f}s old"
    state = report.state or "unknown"
    lines = [f"{name} is {good('running')} (PID {report.pid}, state {state}, {age_text})."]
    if report.url:
        lines.append(f"  URL: {report.url}")
    if report.supervisor_pid is not None:
        lines.append(f"  Supervised by PID {report.supervisor_pid}: {_restarts(report)}")
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


def _restarts(report: Status) -> str:
    count = report.restarts or 0
    text = f"{count} restart{'' if count == 1 else 's'} since start"
    last = report.last_exit
    if last:
        how = f"signal {last.get('signal')}" if last.get("signal") else f"code {last.get('code')}"
        text += f"; it last ended with {how} at {last.get('at')}"
    return text + "."


def health(report: HealthReport, as_json: bool, headline: str | None = None) -> None:
    """`headline` stands for the status line (a server that runs elsewhere has none)."""
    if as_json:
        echo_json({**report.as_dict(), "exit_code": int(report.exit_code)})
        return
    name = report.status.server
    if headline is None:
        headline = (
            f"{name} speaks MCP over stdio; probed a private instance."
            if report.stdio
            else status_text(report.status)
        )
    echo(headline)
    for check in report.checks:
        mark = good("ok  ") if check.ok else bad("FAIL")
        echo(f"  [{mark}] {check.name}: {check.detail}")
    if report.status.running or report.stdio:
        verdict = good("healthy") if report.healthy else bad("UNHEALTHY")
        echo(f"{name} is {verdict}.")
        if not report.probed and not report.checks:
            echo("Run `health --probe` for live checks.")


def servers(entries: list[Status], as_json: bool, where: str) -> None:
    if as_json:
        echo_json([entry.as_dict() for entry in entries])
        return
    if not entries:
        echo(f"No servers found (none running, none under {where}).")
        return
    echo(f"{'SERVER':24} {'STATE':12} {'PID':>8} {'UPTIME':>9} {'AGE':>7}  URL")
    for entry in entries:
        state = entry.state or entry.condition
        pid = str(entry.pid) if entry.pid and entry.running else "-"
        uptime = f"{entry.uptime_seconds:.0f}s" if entry.uptime_seconds is not None else "-"
        age = entry.snapshot_age_seconds
        age_text = f"{age:.1f}s" if age is not None else "-"
        echo(f"{entry.server:24} {state:12} {pid:>8} {uptime:>9} {age_text:>7}  {entry.url or '-'}")


def findings(found: list[Finding], ok: bool, code: int, as_json: bool) -> None:
    from mcp_lifecycle.control.doctor import ERROR, OK

    if as_json:
        echo_json({"ok": ok, "checks": [f.as_dict() for f in found], "exit_code": code})
        return
    for finding in found:
        mark = {OK: good("ok   "), ERROR: bad("error")}.get(finding.level, warn("warn "))
        echo(f"[{mark}] {finding.check}: {finding.detail}")
        if finding.fix and finding.level != OK:
            echo(f"        fix: {finding.fix}")
    echo(good("No problems found.") if ok else bad("Some checks failed."))
