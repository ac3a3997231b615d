"""The runtime health snapshot: schema, tolerant load, atomic write, freshness.

The file keeps Oneiric's schema (`orchestrator_pid`, `updated_at`, `watchers_running`,
`remote_enabled`, `last_remote_sync_at`, `last_remote_error`, `lifecycle_state`,
`activity_state`) so tools that read Oneiric snapshots read ours, and adds our own fields.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_lifecycle.errors import InsecurePathError
from mcp_lifecycle.files.identity import boot_id
from mcp_lifecycle.files.private import (
    atomic_write,
    flock_exclusive,
    open_no_follow,
    read_no_follow,
)

if TYPE_CHECKING:
    from datetime import datetime


def _warn(message: str, *args: object) -> None:
    """Log a warning, with logging imported only now: `status` reads a snapshot every time
    and warns about one rarely (logging, with threading, costs it ~6 ms)."""
    import logging

    from mcp_lifecycle.logs import configure_for_command

    configure_for_command()
    logging.getLogger(__name__).warning(message, *args)


_MAX_SNAPSHOT_BYTES = 1_048_576
# `restarting`: a supervisor waits to start its server again; no server runs meanwhile.
STATES = ("starting", "ready", "stopping", "stopped", "failed", "restarting")


def utc_now_iso() -> str:
    """Now, as `datetime.now(UTC).isoformat()` writes it, microseconds always included.

    Without `datetime`: with the math library under it, ~0.8 MiB that the supervisor would
    hold only to stamp its snapshot. Readers parse it with `datetime.fromisoformat`."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{nanoseconds // 1000:06d}+00:00"


class RuntimeHealthSnapshot:
    """The snapshot's fields; constructed, compared and printed as a dataclass would be.

    A plain class: `dataclasses` imports `inspect` (with `ast`, `dis` and `tokenize`), ~7 ms
    and 1 MiB that `status` and the supervisor would pay for nothing else."""

    _FIELDS = (
        # Oneiric's schema.
        "orchestrator_pid", "updated_at", "watchers_running", "remote_enabled",
        "last_remote_sync_at", "last_remote_error", "lifecycle_state", "activity_state",
        # Ours.
        "server_name", "pid", "process_create_time", "boot_id", "updated_monotonic", "state",
        "started_at", "ready_at", "last_reload_at", "reload_attempts", "last_reload_error",
        "url", "probe", "loop_turned_monotonic", "heartbeat_monotonic", "started_monotonic",
    )  # fmt: skip
    __slots__ = (*_FIELDS, "__weakref__")
    __match_args__ = _FIELDS  # `case RuntimeHealthSnapshot(pid, ...)`, as with the dataclass

    def __init__(
        self,
        orchestrator_pid: int | None = None,
        updated_at: str | None = None,
        watchers_running: bool = False,
        remote_enabled: bool = False,
        last_remote_sync_at: str | None = None,
        last_remote_error: str | None = None,
        lifecycle_state: dict[str, Any] | None = None,
        activity_state: dict[str, Any] | None = None,
        server_name: str | None = None,
        pid: int | None = None,
        process_create_time: float | None = None,
        boot_id: str | None = None,
        updated_monotonic: float | None = None,
        state: str | None = None,
        started_at: str | None = None,
        ready_at: str | None = None,
        last_reload_at: str | None = None,
        reload_attempts: int = 0,
        last_reload_error: str | None = None,
        url: str | None = None,
        probe: dict[str, Any] | None = None,
        loop_turned_monotonic: float | None = None,
        heartbeat_monotonic: float | None = None,
        started_monotonic: float | None = None,
    ) -> None:
        self.orchestrator_pid = orchestrator_pid
        self.updated_at = updated_at
        self.watchers_running = watchers_running
        self.remote_enabled = remote_enabled
        self.last_remote_sync_at = last_remote_sync_at
        self.last_remote_error = last_remote_error
        self.lifecycle_state: dict[str, Any] = {} if lifecycle_state is None else lifecycle_state
        self.activity_state: dict[str, Any] = {} if activity_state is None else activity_state
        self.server_name = server_name
        self.pid = pid
        self.process_create_time = process_create_time
        self.boot_id = boot_id
        # CLOCK_MONOTONIC is system-wide on Linux: a reader on the same boot judges age with
        # it, immune to wall-clock jumps.
        self.updated_monotonic = updated_monotonic
        self.state = state
        self.started_at = started_at
        # When a server in this folder last became ready (kept by the next, until it does
        # too): `ls` forgets a folder whose servers never did.
        self.ready_at = ready_at
        self.last_reload_at = last_reload_at
        # Every SIGHUP counts, applied or not, so `reload` can tell when its own one was
        # handled.
        self.reload_attempts = reload_attempts
        self.last_reload_error = last_reload_error
        self.url = url
        self.probe = probe
        # When the server's event loop last turned (CLOCK_MONOTONIC), for servers whose loop
        # is watched: a stale snapshot with an old turn means the loop is blocked.
        self.loop_turned_monotonic = loop_turned_monotonic
        self.heartbeat_monotonic = heartbeat_monotonic
        # `started_at` on CLOCK_MONOTONIC: a reader on the same boot knows the uptime without
        # parsing a date (and without a wall clock that may have stepped).
        self.started_monotonic = started_monotonic

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuntimeHealthSnapshot) or type(other) is not type(self):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass is

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__name__}({shown})"

    def as_dict(self) -> dict[str, Any]:
        """Every field, its dicts copied (as `dataclasses.asdict` did)."""
        values = {name: getattr(self, name) for name in self._FIELDS}
        for name in ("lifecycle_state", "activity_state", "probe"):
            if values[name] is not None:
                values[name] = copy.deepcopy(values[name])
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeHealthSnapshot:
        """Take each known field whose value has the right type; ignore everything else."""
        defaults = cls()
        values: dict[str, Any] = {}
        for name in cls._FIELDS:
            if name in data and _type_ok(data[name], getattr(defaults, name), name):
                values[name] = data[name]
        if values.get("state") not in (None, *STATES):
            values.pop("state")
        return cls(**values)

    def touch(self) -> None:
        """Stamp the snapshot as written now."""
        self.updated_at = utc_now_iso()
        self.updated_monotonic = time.monotonic()
        self.boot_id = boot_id()


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "orchestrator_pid": (int,),
    "pid": (int,),
    "updated_at": (str,),
    "last_remote_sync_at": (str,),
    "last_remote_error": (str,),
    "server_name": (str,),
    "boot_id": (str,),
    "state": (str,),
    "started_at": (str,),
    "ready_at": (str,),
    "last_reload_at": (str,),
    "reload_attempts": (int,),
    "last_reload_error": (str,),
    "url": (str,),
    "watchers_running": (bool,),
    "remote_enabled": (bool,),
    "lifecycle_state": (dict,),
    "activity_state": (dict,),
    "probe": (dict,),
    "process_create_time": (int, float),
    "updated_monotonic": (int, float),
    "loop_turned_monotonic": (int, float),
    "heartbeat_monotonic": (int, float),
    "started_monotonic": (int, float),
}


def _type_ok(value: Any, default: Any, name: str) -> bool:
    if value is None:
        return default is None
    allowed = _FIELD_TYPES[name]
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def never_ready(path: Path) -> bool:
    """Whether the snapshot at `path` says that no server of that folder ever became ready:
    written by a server that records `ready_at` (an older one's snapshot, which lacks the
    field, says nothing either way)."""
    try:
        data = read_no_follow(Path(path), _MAX_SNAPSHOT_BYTES + 1)
        parsed = json.loads(data) if data else None
    except (OSError, InsecurePathError, ValueError):
        return False
    return isinstance(parsed, dict) and "ready_at" in parsed and parsed["ready_at"] is None


def load_runtime_health(path: Path) -> RuntimeHealthSnapshot:
    """The snapshot at `path`; an empty one (and a warning) if it is missing or unreadable.

    Never raises: a half-written, corrupt or hostile file must not take the CLI down.
    """
    try:
        data = read_no_follow(Path(path), _MAX_SNAPSHOT_BYTES + 1)
    except (OSError, InsecurePathError) as exc:
        _warn("cannot read health snapshot %s: %s", path, exc)
        return RuntimeHealthSnapshot()
    if data is None:
        return RuntimeHealthSnapshot()
    if len(data) > _MAX_SNAPSHOT_BYTES:
        _warn("health snapshot %s is larger than 1 MiB; ignoring it", path)
        return RuntimeHealthSnapshot()
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        _warn("health snapshot %s is not valid JSON (%s); ignoring it", path, exc)
        return RuntimeHealthSnapshot()
    if not isinstance(parsed, dict):
        _warn("health snapshot %s is not a JSON object; ignoring it", path)
        return RuntimeHealthSnapshot()
    return RuntimeHealthSnapshot.from_dict(parsed)


def write_runtime_health(path: Path, snapshot: RuntimeHealthSnapshot) -> None:
    """Atomically write the snapshot (0o600). Raises OSError; the old file then stays whole."""
    data = json.dumps(snapshot.as_dict(), indent=2, sort_keys=True).encode() + b"\n"
    atomic_write(Path(path), data)


# Lock fds open right now; a child forked meanwhile closes its copies so that it cannot keep
# the lock after this process lets go.
_open_lock_fds: set[int] = set()
os.register_at_fork(after_in_child=lambda: _close_all(_open_lock_fds))


def _close_all(fds: set[int]) -> None:
    for fd in list(fds):
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


@contextlib.contextmanager
def _update_lock(path: Path, timeout: float) -> Iterator[None]:
    """Exclusive lock for a read-modify-write; TimeoutError if another holder keeps it longer
    than `timeout` (a writer must never hang on a stuck reader)."""
    lock_path = path.with_name(path.name + ".lock")
    fd = open_no_follow(lock_path, os.O_RDWR | os.O_CREAT)
    _open_lock_fds.add(fd)
    try:
        if not flock_exclusive(fd, timeout):
            raise TimeoutError(f"{lock_path} is held by another process")
        yield
    finally:
        _open_lock_fds.discard(fd)
        os.close(fd)


def update_runtime_health(
    path: Path, mutate: Callable[[RuntimeHealthSnapshot], None], timeout: float = 2.0
) -> RuntimeHealthSnapshot:
    """Read, change and write the snapshot under a lock, so the heartbeat and a probe
    recording its result never lose each other's fields. Raises OSError (TimeoutError when
    the lock stays busy for `timeout` seconds)."""
    with _update_lock(Path(path), timeout):
        snapshot = load_runtime_health(path)
        mutate(snapshot)
        write_runtime_health(path, snapshot)
        return snapshot


def uptime_seconds(snapshot: RuntimeHealthSnapshot) -> float | None:
    """Seconds since the server the snapshot describes started; None if it does not say."""
    return _elapsed(snapshot, snapshot.started_monotonic, snapshot.started_at)


def _elapsed(
    snapshot: RuntimeHealthSnapshot, monotonic: float | None, stamp: str | None
) -> float | None:
    """Seconds since a moment the snapshot recorded twice: on CLOCK_MONOTONIC, which decides
    on the writer's boot (a wall-clock jump changes nothing), and as an ISO time otherwise."""
    if monotonic is not None and snapshot.boot_id is not None and snapshot.boot_id == boot_id():
        return time.monotonic() - monotonic
    return seconds_since(stamp) if stamp else None


def seconds_since(stamp: str) -> float | None:
    """Seconds from the ISO 8601 time `stamp` (UTC unless it says otherwise) to now; None if
    it is not one."""
    parsed = _parse_iso(stamp)
    return None if parsed is None else time.time() - parsed.timestamp()


def _parse_iso(value: str) -> datetime | None:
    from datetime import UTC, datetime  # only readers of a wall-clock time need it

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def get_snapshot_age_seconds(snapshot: RuntimeHealthSnapshot) -> float | None:
    """Seconds since the snapshot was written; None if it carries no usable timestamp.

    On the writer's boot the monotonic clock decides (a wall-clock jump changes nothing);
    otherwise the wall clock. A timestamp in the future gives a negative age.
    """
    return _elapsed(snapshot, snapshot.updated_monotonic, snapshot.updated_at)


# Tolerates scheduling jitter between writer and reader; anything further in the future is
# a clock problem or a forged file, and not fresh.
_FUTURE_TOLERANCE_SECONDS = 1.0


def is_snapshot_fresh(snapshot: RuntimeHealthSnapshot, ttl_seconds: float) -> bool:
    age = get_snapshot_age_seconds(snapshot)
    return age is not None and -_FUTURE_TOLERANCE_SECONDS <= age <= ttl_seconds
