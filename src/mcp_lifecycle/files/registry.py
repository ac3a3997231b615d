"""The registry of running servers: each server writes its entry at start and removes it at
its stop.

It lets `status`, `stop`, `health`, `logs` and `reload` find a running server by name from any
working directory, with whatever cache root it was given, even after its settings files broke.
An entry only says where to look: whether a server runs there is proven, as always, by its
lock and identity record.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.files.paths import ServerPaths, server_name_problem, state_root
from mcp_lifecycle.files.private import atomic_write, digest, ensure_cache_root, read_no_follow

# Not a valid server name (it starts with '.'), so it never meets a server's default cache root.
_RUNNING = ".running"
_MAX_ENTRY_BYTES = 65536


def running_dir() -> Path:
    return state_root() / _RUNNING


class Registration(NamedTuple):
    """A server as it registered at start: where it lives and the settings it runs with."""

    server: str
    cache_root: Path
    pid: int
    settings: dict[str, Any]  # its lifecycle fields, as JSON: `LifecycleFields.from_json`

    @property
    def paths(self) -> ServerPaths:
        return ServerPaths(self.server, self.cache_root)


def _entry_path(server_name: str, cache_root: Path, folder: Path | None) -> Path:
    key = digest(os.path.realpath(cache_root).encode())
    return (folder or running_dir()) / f"{server_name}@{key}.json"


def register(settings: dict[str, Any], pid: int, folder: Path | None = None) -> None:
    """Record a running server with the settings it runs with (its lifecycle fields as JSON)
    in `folder` (default: `running_dir()`); raises OSError or LifecycleError when the registry
    cannot be written."""
    folder = folder or running_dir()
    ensure_cache_root(folder)
    server = settings["server_name"]
    entry = {"server": server, "pid": pid, "settings": settings}
    path = _entry_path(server, Path(settings["resolved_cache_root"]), folder)
    atomic_write(path, json.dumps(entry).encode())


def unregister(server_name: str, cache_root: Path, pid: int, folder: Path | None = None) -> None:
    """Forget the server, if the entry is still the one `pid` wrote."""
    path = _entry_path(server_name, cache_root, folder)
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
    server, pid, settings = entry.get("server"), entry.get("pid"), entry.get("settings")
    if (
        not isinstance(server, str)
        or server_name_problem(server) is not None
        or type(pid) is not int
        or not isinstance(settings, dict)
        or settings.get("server_name") != server
        or not isinstance(settings.get("resolved_cache_root"), str)
    ):
        return None
    return Registration(server, Path(settings["resolved_cache_root"]), pid, settings)


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
