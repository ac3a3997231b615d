"""Who a process is: (pid, start time, boot id, uid), and whether it is our server.

A name in a command line is not proof of identity; only the record the server wrote into its
lock file while holding the lock is.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# psutil derives create_time from clock ticks since boot: the same process always reads the
# same value, but allow for float rounding.
_CREATE_TIME_TOLERANCE = 0.05
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    try:
        return _BOOT_ID_PATH.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    create_time: float
    boot_id: str | None
    uid: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessIdentity | None:
        """Parse a record; None for anything that is not exactly a record."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        pid, create_time, boot, uid = (
            data.get("pid"),
            data.get("create_time"),
            data.get("boot_id"),
            data.get("uid"),
        )
        if (
            type(pid) is not int
            or pid <= 0
            or type(uid) is not int
            or not isinstance(create_time, int | float)
            or isinstance(create_time, bool)
            or not (boot is None or isinstance(boot, str))
        ):
            return None
        return cls(pid=pid, create_time=float(create_time), boot_id=boot, uid=uid)


def current_identity() -> ProcessIdentity:
    return identity_of(os.getpid())


def identity_of(pid: int) -> ProcessIdentity:
    """Raises psutil.NoSuchProcess if the process is gone."""
    proc = psutil.Process(pid)
    with proc.oneshot():
        return ProcessIdentity(
            pid=pid, create_time=proc.create_time(), boot_id=boot_id(), uid=proc.uids().real
        )


def is_process_alive(pid: int, server_name: str = "") -> bool:
    """True if `pid` names a live (not zombie) process.

    This is the seed's liveness check and nothing more: it does not prove the process is the
    server called `server_name` (a name in a command line proves nothing). Use
    `validate_pid_integrity` before signalling anything.
    """
    if pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def mismatch_reason(pid: int, record: ProcessIdentity | None) -> str | None:
    """Why live process `pid` is not the process `record` describes; None when it is."""
    if record is None:
        return "no server holds the lock for it"
    if record.pid != pid:
        return f"the server's lock is held by PID {record.pid}, not {pid}"
    try:
        actual = identity_of(pid)
    except psutil.NoSuchProcess:
        return "the process is gone"
    if record.boot_id and actual.boot_id and record.boot_id != actual.boot_id:
        return "the record is from an earlier boot"
    if abs(actual.create_time - record.create_time) > _CREATE_TIME_TOLERANCE:
        return "it started at a different time than our server did (the PID was reused)"
    if actual.uid != os.getuid():
        return f"it runs as uid {actual.uid}, not as you (uid {os.getuid()})"
    return None
