"""What the fleet looks like now: one row per member (state, PID, URL, uptime, restarts, CPU,
memory), its health, and the client config for the running ones."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from mcp_lifecycle.control.health import Check, HealthReport
from mcp_lifecycle.control.status import Status, observe_quietly
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.fleet.members import Member


@dataclass
class Row:
    name: str
    kind: str
    status: Status | None  # None for a server that runs elsewhere
    url: str | None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    elsewhere: str | None = None  # runs under this name, but not started from this file

    @property
    def guarded(self) -> bool:
        """Does our bearer token guard its URL? Only the bridge's: a server that speaks HTTP
        itself answers whoever reaches it, and nothing of ours sits in front of it."""
        return self.kind == "stdio"

    @property
    def access_note(self) -> str | None:
        if self.guarded or self.url is None:
            return None
        return (
            "serves HTTP itself: no token of ours guards it; whoever can reach "
            f"{self.url} may use it, unless the server checks callers on its own"
        )

    @property
    def state(self) -> str:
        if self.status is None:
            return "remote"
        if self.status.running:
            return self.status.state or "running"
        return self.status.condition

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.SUCCESS if self.status is None else self.status.exit_code

    def as_dict(self) -> dict[str, Any]:
        base = self.status.as_dict() if self.status is not None else {"server": self.name}
        return {
            **base,
            "kind": self.kind,
            "state": self.state,
            "url": self.url,
            "cpu_percent": self.cpu_percent,
            "rss_bytes": self.rss_bytes,
            "started_elsewhere": self.elsewhere,
            "token_required": self.guarded,
            "access_note": self.access_note,
            "exit_code": int(self.exit_code),
        }


def rows(members: list[Member], usage: bool = True) -> list[Row]:
    """A row per member, with (`usage`) the CPU and memory of each running one."""
    table = [_row(member) for member in members]
    for row in table:
        if usage and row.status is not None and row.status.running:
            tree = _tree(row.status.pid)
            if tree:
                row.cpu_percent = round(_cpu(tree), 1)
                row.rss_bytes = _rss(tree)
    return table


def _row(member: Member) -> Row:
    if not member.entry.started_by_us:
        return Row(member.name, member.entry.kind, None, member.url)
    status = observe_quietly(member.fields)
    # A running server's own record of its URL: the file may have changed since it started.
    url = status.url if status.running and status.url else member.url
    elsewhere = member.started_elsewhere() if status.running else None
    return Row(member.name, member.entry.kind, status, url, elsewhere=elsewhere)


def _tree(pid: int | None) -> list[Any]:
    """The server's process and every process under it (a foreign server is our child)."""
    import psutil

    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu(tree: list[Any]) -> float:
    """The tree's CPU time over the server's life, in % of one core: no sample to wait for
    (`status` runs in prompts and probes; a 100 ms sample doubled its time)."""
    import psutil

    spent = 0.0
    for process in tree:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            spent += times.user + times.system + times.children_user + times.children_system
    try:
        lived = time.time() - tree[0].create_time()
    except psutil.Error:
        return 0.0
    return 100 * spent / lived if lived > 0 else 0.0


def _rss(tree: list[Any]) -> int:
    import psutil

    total = 0
    for process in tree:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def health(member: Member, probe: bool) -> HealthReport:
    """A member's health as `health` reports a server of ours; a remote one gets the MCP
    handshake (it is all there is to check)."""
    from mcp_lifecycle.control.health import health_from_snapshot, probe_health

    if member.entry.started_by_us:
        return probe_health(member.fields, {}) if probe else health_from_snapshot(member.fields)
    return _remote_health(member)


def _remote_health(member: Member) -> HealthReport:
    """Probed always: it has no snapshot of ours."""
    from mcp_lifecycle.control.status import Status

    url = member.url or ""
    status = Status(
        server=member.name,
        condition="running",
        pid=None,
        state="ready",
        url=url,
        snapshot_age_seconds=None,
        snapshot_fresh=True,
        ttl_seconds=0.0,
        reason="runs elsewhere; only its URL is known",
        cache_root="",
        log_file="",
    )
    from mcp_lifecycle.transports.probe import handshake

    report = HealthReport(status, [], probed=True)
    began = time.monotonic()
    ok, detail = handshake(url, f"at {url}", member.fields.probe_timeout_seconds)
    report.checks.append(Check("mcp", ok, detail, (time.monotonic() - began) * 1000))
    return report


def client_config(members: list[Member]) -> dict[str, Any]:
    """What an MCP client should use instead of starting the servers itself: their URLs (and
    our bearer token, for the bridged ones), for the members that run."""
    from mcp_lifecycle.files.paths import ServerPaths
    from mcp_lifecycle.transports.access import client_entry, read_token

    servers: dict[str, Any] = {}
    for row, member in zip(rows(members, usage=False), members, strict=True):
        if row.url is None or (row.status is not None and not row.status.running):
            continue
        if row.elsewhere is not None:
            continue  # another project's server: not this file's to hand out
        token = None
        if member.auth == "token":
            token = read_token(ServerPaths.for_settings(member.fields).token)
        servers[member.name] = client_entry(row.url, token)
    return {"mcpServers": servers}
