"""The user's servers: a registry of running ones, written by each server at start, and how
each one is doing.

The registry lets `status`, `stop`, `health`, `logs` and `reload` find a running server by name
from any working directory, with whatever cache root it was given, even after its settings
files broke. An entry only says where to look: whether a server runs there is proven, as
always, by its lock and identity record.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_lifecycle.control.inspect import inspect_server
from mcp_lifecycle.errors import ConfigurationError, LifecycleError
from mcp_lifecycle.files.paths import ServerPaths, server_name_problem
from mcp_lifecycle.files.pidfile import lock_is_held
from mcp_lifecycle.files.private import atomic_write, ensure_cache_root, read_no_follow
from mcp_lifecycle.files.snapshot import get_snapshot_age_seconds, load_runtime_health
from mcp_lifecycle.settings.cache import digest, well_formed

# Not a valid server name (it starts with '.'), so it never meets a server's default cache root.
_RUNNING = ".running"
_MAX_ENTRY_BYTES = 65536


def state_root() -> Path:
    """Where servers with the default cache root live (one folder each)."""
    from platformdirs import user_state_path

    return user_state_path("mcp-lifecycle")


def running_dir() -> Path:
    return state_root() / _RUNNING


@dataclass(frozen=True)
class Registration:
    """A server as it registered at start: where it lives and the settings it runs with."""

    server: str
    cache_root: Path
    pid: int
    settings: dict[str, Any]

    @property
    def paths(self) -> ServerPaths:
        return ServerPaths(self.server, self.cache_root)


def _entry_path(server_name: str, cache_root: Path) -> Path:
    key = digest(os.path.realpath(cache_root).encode())
    return running_dir() / f"{server_name}@{key}.json"


def register(values: dict[str, Any], pid: int) -> None:
    """Record a running server (its lifecycle settings `values`); raises OSError or
    LifecycleError when the registry cannot be written."""
    cache_root = Path(values["resolved_cache_root"])
    ensure_cache_root(running_dir())
    entry = {"server": values["server_name"], "pid": pid, "settings": values}
    atomic_write(_entry_path(values["server_name"], cache_root), json.dumps(entry).encode())


def unregister(server_name: str, cache_root: Path, pid: int) -> None:
    """Forget the server, if the entry is still the one `pid` wrote."""
    path = _entry_path(server_name, cache_root)
    found = _read(path)
    if found is not None and found.pid == pid:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _read(path: Path) -> Registration | None:
    try:
        data = read_no_follow(path, _MAX_ENTRY_BYTES)
        entry = json.loads(data) if data else None
    except (OSError, LifecycleError, ValueError):
        return None
    if not isinstance(entry, dict):
        return None
    server, pid, values = entry.get("server"), entry.get("pid"), entry.get("settings")
    if (
        not isinstance(server, str)
        or server_name_problem(server) is not None
        or type(pid) is not int
        or not well_formed(values, server)
    ):
        return None
    assert isinstance(values, dict)
    return Registration(server, Path(values["resolved_cache_root"]), pid, values)


def registrations(server_name: str | None = None) -> list[Registration]:
    """Every well-formed entry (for `server_name`, if given), running or not."""
    folder = running_dir()
    try:
        names = sorted(os.listdir(folder)) if _trusted(folder) else []
    except OSError:
        return []
    prefix = f"{server_name}@" if server_name else ""
    found = (_read(folder / name) for name in names if name.startswith(prefix))
    return [entry for entry in found if entry is not None]


def _trusted(folder: Path) -> bool:
    """Whether the registry folder exists and is safe to trust (ours, private, safe parents)."""
    from mcp_lifecycle.files.private import validate_cache_ownership

    if not os.path.isdir(folder):
        return False
    try:
        validate_cache_ownership(folder)
    except LifecycleError:
        return False
    return True


def find_running(server_name: str, cache_root: Path | None = None) -> Registration | None:
    """The one registered server of that name whose lock is held now (at `cache_root`, if
    given); ConfigurationError if several are."""
    alive = []
    for entry in registrations(server_name):
        if cache_root is not None and os.path.realpath(entry.cache_root) != os.path.realpath(
            cache_root
        ):
            continue
        with contextlib.suppress(OSError, LifecycleError):
            if lock_is_held(entry.paths.lock):
                alive.append(entry)
    if len(alive) > 1:
        roots = ", ".join(str(entry.cache_root) for entry in alive)
        raise ConfigurationError(
            f"several servers named {server_name} run (cache roots {roots})",
            hint="say which with --cache-root",
        )
    return alive[0] if alive else None


@dataclass
class ServerEntry:
    server: str
    condition: str
    state: str | None
    pid: int | None
    url: str | None
    uptime_seconds: float | None
    snapshot_age_seconds: float | None
    cache_root: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_servers(root: Path | None = None) -> list[ServerEntry]:
    """The servers that registered (running, or ended without a clean stop) and those in
    `root`'s folders that ever started (they hold a lock file), each once."""
    found: dict[str, ServerPaths] = {}
    if root is None:
        for entry in registrations():
            found.setdefault(os.path.realpath(entry.cache_root), entry.paths)
    root = root or state_root()
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        folders = []
    for folder in folders:
        if server_name_problem(folder.name) is None and (folder / f"{folder.name}.lock").exists():
            found.setdefault(os.path.realpath(folder), ServerPaths(folder.name, folder))
    entries = [_entry(paths) for paths in found.values()]
    return sorted(entries, key=lambda entry: (entry.server, entry.cache_root))


def _error(paths: ServerPaths, reason: str) -> ServerEntry:
    return ServerEntry(
        paths.server_name, "error", None, None, None, None, None, str(paths.cache_root), reason
    )


def _entry(paths: ServerPaths) -> ServerEntry:
    try:
        state = inspect_server(paths)
    except LifecycleError as exc:
        return _error(paths, exc.message)
    except OSError as exc:  # one unreadable folder must not hide the others
        return _error(paths, f"cannot read it: {exc.strerror or exc}")
    snapshot = load_runtime_health(paths.snapshot) if state.running else None
    if snapshot is not None and snapshot.pid != state.pid:
        snapshot = None
    uptime = None
    if snapshot is not None and snapshot.started_at:
        try:
            started = datetime.fromisoformat(snapshot.started_at)
            uptime = round((datetime.now(UTC) - started).total_seconds(), 1)
        except ValueError:
            uptime = None
    age = get_snapshot_age_seconds(snapshot) if snapshot is not None else None
    return ServerEntry(
        server=paths.server_name,
        condition=state.condition.value,
        state=snapshot.state if snapshot is not None else None,
        pid=state.pid,
        url=snapshot.url if snapshot is not None else None,
        uptime_seconds=uptime,
        snapshot_age_seconds=round(age, 1) if age is not None else None,
        cache_root=str(paths.cache_root),
        reason=state.reason,
    )
