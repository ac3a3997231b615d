"""From the fleet file's entries to what the lifecycle works with: each member's settings (the
same in `up` and in the server process, handed over as flags), and the command that runs it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.fleet.spec import Fleet, ServerEntry
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.settings.flags import Flags

SERVE_COMMAND = [sys.executable, "-m", "mcp_lifecycle.fleet.serve"]


@dataclass(frozen=True)
class Member:
    entry: ServerEntry
    flags: Flags
    fields: LifecycleFields
    auth: str
    fleet_file: Path

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def url(self) -> str | None:
        """Where clients reach it: the file's URL, or ours for a bridged stdio server."""
        return self.fields.url if self.entry.kind == "stdio" else self.entry.url

    @property
    def paths(self) -> ServerPaths:
        return ServerPaths.for_settings(self.fields)

    def started_elsewhere(self) -> str | None:
        """Why the server running under this name is not this fleet file's (None: it is
        ours, or none runs)."""
        from mcp_lifecycle.control.inspect import Condition, inspect_server
        from mcp_lifecycle.fleet.origin import started_elsewhere

        state = inspect_server(self.paths)
        if state.condition is not Condition.RUNNING or state.pid is None:
            return None
        return started_elsewhere(self.paths, self.fleet_file, state.pid)

    def environment(self) -> dict[str, str]:
        from mcp_lifecycle.handoff import FLEET_ENTRY_ENV

        return {FLEET_ENTRY_ENV: self.entry.to_json()}


def members(fleet: Fleet, names: list[str] | None, *, starting: bool = False) -> list[Member]:
    """The members named (all when none are). `starting`: bridged stdio servers without a
    port get one now (a free port, kept for the name); otherwise the one kept, if any."""
    entries = fleet.select(names)
    declared = {e.port for e in fleet.servers.values() if e.port is not None}
    ports = _bridge_ports(entries, starting, declared)
    return [_member(fleet, entry, ports.get(entry.name)) for entry in entries]


def _bridge_ports(entries: list[ServerEntry], starting: bool, declared: set[int]) -> dict[str, int]:
    from mcp_lifecycle.fleet.ports import assign_ports, kept_port

    unassigned = [e.name for e in entries if e.kind == "stdio" and e.port is None]
    if not unassigned:
        return {}
    if starting:
        from mcp_lifecycle.control.discovery import find_running

        running = {name for name in unassigned if find_running(name) is not None}
        return assign_ports(unassigned, running, declared)
    kept = {name: kept_port(name) for name in unassigned}
    return {name: port for name, port in kept.items() if port is not None}


def _member(fleet: Fleet, entry: ServerEntry, kept_port: int | None) -> Member:
    from mcp_lifecycle.files.paths import default_cache_root
    from mcp_lifecycle.settings.loader import SettingsLoader

    where = f"{fleet.path} line {entry.line}"
    # The file is the members' whole configuration: an MCP_SERVER_* variable meant for one
    # server of ours (MCP_SERVER_CACHE_ROOT, MCP_SERVER_PORT) must not land on all of them.
    values: dict[str, object] = {
        "transport": "http",
        "restart_policy": entry.restart,
        "cache_root": str(default_cache_root(entry.name)),
    }
    if entry.kind == "stdio":
        values.update(host="127.0.0.1", http_path="/mcp", auth="token")
        port = entry.port or kept_port
        if port is not None:
            values["port"] = port
    elif entry.url is not None:
        parts = urlsplit(entry.url)
        values.update(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (443 if parts.scheme == "https" else 80),
            http_path=parts.path or "/",
            auth="none",  # the server guards its own door; we cannot hand it a token
        )
    flags = Flags(dict(values), dict.fromkeys(values, where))
    # The flags are the top layer: `auth` is what they say.
    fields = SettingsLoader(entry.name).fields(flags)
    return Member(entry, flags, fields, str(values.get("auth", "none")), fleet.path)
