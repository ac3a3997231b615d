"""What state a server is in, judged from its files, its lock and the process table.

The lock decides: a held lock means a server runs (and its record says which process); a free
lock means none does, whatever the PID file says.
"""

from __future__ import annotations

import contextlib
import os
import time
from enum import Enum
from pathlib import Path
from typing import NamedTuple

from mcp_lifecycle.errors import CorruptFile, LifecycleError
from mcp_lifecycle.files.identity import ProcessIdentity, is_process_alive, mismatch_reason
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.pidfile import lock_is_held, read_lock_record, read_pid_file
from mcp_lifecycle.files.private import read_no_follow, validate_cache_ownership

# A server writes its record within microseconds of winning the lock; a reader that finds the
# lock held but no record waits this long before calling the holder unverifiable.
_RECORD_WAIT_SECONDS = 0.5


class Condition(Enum):
    RUNNING = "running"
    NOT_RUNNING = "not running"
    STALE = "stale"  # a PID file, but no server holds the lock
    UNVERIFIED = "unverified"  # the lock is held, but its holder cannot be proven ours


class ServerState(NamedTuple):
    condition: Condition
    pid: int | None = None
    identity: ProcessIdentity | None = None
    reason: str = ""
    pid_file_pid: int | None = None
    pid_file_bytes: bytes | None = None  # what a corrupt PID file held when judged

    @property
    def running(self) -> bool:
        return self.condition is Condition.RUNNING


def inspect_server(paths: ServerPaths) -> ServerState:
    """Raises InsecurePathError for an unsafe cache root or a symlinked PID file; never signals."""
    corrupt_bytes: bytes | None = None
    if not os.path.lexists(paths.cache_root):
        return _named_holder(paths, None) or ServerState(Condition.NOT_RUNNING)
    validate_cache_ownership(paths.cache_root)
    corrupt: str | None = None
    try:
        file_pid = read_pid_file(paths.pid)
    except CorruptFile as exc:
        file_pid, corrupt = None, exc.message
        with contextlib.suppress(OSError, LifecycleError):
            corrupt_bytes = read_no_follow(paths.pid, 4096)
    if lock_is_held(paths.lock):
        return _held(paths, file_pid)
    named = _named_holder(paths, file_pid)
    if named is not None:
        return named
    if corrupt is not None:
        return ServerState(
            Condition.STALE,
            reason=f"{corrupt}, and no server holds the lock",
            pid_file_bytes=corrupt_bytes,
        )
    if file_pid is None:
        return ServerState(Condition.NOT_RUNNING)
    if is_process_alive(file_pid):
        return ServerState(
            Condition.STALE,
            pid=file_pid,
            pid_file_pid=file_pid,
            reason=(
                f"PID {file_pid} is alive but is not this server: it does not hold the server's "
                "lock (the PID was reused, or the file was written by something else)"
            ),
        )
    return ServerState(
        Condition.STALE,
        pid=file_pid,
        pid_file_pid=file_pid,
        reason=f"process {file_pid} is gone (the server crashed or was killed)",
    )


def _named_holder(paths: ServerPaths, file_pid: int | None) -> ServerState | None:
    """A server whose lock file (or whole cache root) was deleted still holds its name."""
    from mcp_lifecycle.files.name_socket import name_claim

    claim = name_claim(paths)
    if claim is None or claim.identity is None:
        return None
    return ServerState(
        Condition.RUNNING,
        pid=claim.holder.pid,
        identity=claim.identity,
        pid_file_pid=file_pid,
        reason="its lock file is missing, but it holds the server's name and lock",
    )


def _held(paths: ServerPaths, file_pid: int | None) -> ServerState:
    deadline = time.monotonic() + _RECORD_WAIT_SECONDS
    while True:
        record = read_lock_record(paths.lock)
        if record is not None:
            reason = mismatch_reason(record.pid, record)
            if reason is None:
                return ServerState(
                    Condition.RUNNING, pid=record.pid, identity=record, pid_file_pid=file_pid
                )
        else:
            reason = "its holder wrote no identity record"
        if time.monotonic() >= deadline or not lock_is_held(paths.lock):
            break
        time.sleep(0.01)
    if not lock_is_held(paths.lock):  # the holder just exited: judge again from scratch
        return inspect_server(paths)
    return ServerState(
        Condition.UNVERIFIED,
        pid=record.pid if record else file_pid,
        pid_file_pid=file_pid,
        reason=f"the server's lock is held, but {reason}",
    )


def validate_pid_integrity(pid: int, pid_path: Path, server_name: str) -> tuple[bool, str]:
    """Whether `pid` is provably the running server `server_name` whose PID file is `pid_path`.

    Proof is the lock: the process must hold (be recorded as holding) the server's lock, with
    the start time, boot and user it recorded. Returns (ok, reason).
    """
    state = inspect_server(ServerPaths(server_name, Path(pid_path).parent))
    if state.condition is Condition.RUNNING:
        if state.pid == pid:
            return True, f"PID {pid} is {server_name}: it holds the server's lock"
        return False, f"{server_name} runs as PID {state.pid}, not {pid}"
    if state.condition is Condition.NOT_RUNNING:
        return False, f"{server_name} is not running"
    return False, state.reason
