"""Every server registered under this user's state directory, and how each one is doing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.paths import ServerPaths
from mcp_lifecycle.snapshot import get_snapshot_age_seconds, load_runtime_health
from mcp_lifecycle.state import inspect_server


def state_root() -> Path:
    """Where servers with the default cache root live (one folder each)."""
    from platformdirs import user_state_path

    return user_state_path("mcp-lifecycle")


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
    root = root or state_root()
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    return [_entry(folder) for folder in folders]


def _error(folder: Path, reason: str) -> ServerEntry:
    return ServerEntry(folder.name, "error", None, None, None, None, None, str(folder), reason)


def _entry(folder: Path) -> ServerEntry:
    paths = ServerPaths(folder.name, folder)
    try:
        state = inspect_server(paths)
    except LifecycleError as exc:
        return _error(folder, exc.message)
    except OSError as exc:  # one unreadable folder must not hide the others
        return _error(folder, f"cannot read it: {exc.strerror or exc}")
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
        server=folder.name,
        condition=state.condition.value,
        state=snapshot.state if snapshot is not None else None,
        pid=state.pid,
        url=snapshot.url if snapshot is not None else None,
        uptime_seconds=uptime,
        snapshot_age_seconds=round(age, 1) if age is not None else None,
        cache_root=str(folder),
        reason=state.reason,
    )
