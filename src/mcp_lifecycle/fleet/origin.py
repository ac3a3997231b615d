"""Which fleet file started a running member: a server is found by its name, and two fleet
files (or a fleet file and a server's own CLI) may use the same one. A fleet acts only on what
it started itself: `down` in one project must not stop another project's server."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.private import atomic_write, read_no_follow


def _path(paths: ServerPaths) -> Path:
    return paths.cache_root / f"{paths.server_name}.fleet.json"


def record(paths: ServerPaths, fleet_file: Path, pid: int) -> None:
    """Written by `up` once the member is READY: `pid` holds its lock."""
    data = {"fleet_file": str(fleet_file.resolve()), "pid": pid}
    atomic_write(_path(paths), json.dumps(data).encode())


def started_elsewhere(paths: ServerPaths, fleet_file: Path, pid: int) -> str | None:
    """Why the server running as `pid` is not this fleet file's to act on; None when it is."""
    try:
        raw = read_no_follow(_path(paths), 65536)
        data = json.loads(raw) if raw else None
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("pid") != pid:
        return "it was not started by a fleet file (its own CLI runs it)"
    theirs = data.get("fleet_file")
    if theirs != str(fleet_file.resolve()):
        return f"it was started from {theirs}"
    return None


def forget(paths: ServerPaths) -> None:
    with contextlib.suppress(OSError):
        os.unlink(_path(paths))
