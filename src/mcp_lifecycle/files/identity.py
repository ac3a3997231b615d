"""Who a process is: (pid, start time, boot id, uid), and whether it is our server.

A name in a command line is not proof of identity; only the record the server wrote into its
lock file while holding the lock is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from mcp_lifecycle.files import kernel

# Where /proc is missing, psutil's create_time stands in for the start ticks; it moves with
# wall-clock steps, so it only needs to match to this tolerance.
_CREATE_TIME_TOLERANCE = 0.05
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).

    Unlike psutil's create_time (ticks plus the boot time in wall-clock seconds), it never
    changes when the wall clock is stepped, so (pid, start ticks, boot id) names one process.
    """
    if not kernel.PROC:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return parse_start_ticks(handle.read())
    except OSError:
        return None


def parse_start_ticks(stat: bytes) -> int | None:
    """Field 22 of a /proc/PID/stat line; None if the line is not one."""
    # The command name may hold spaces and parentheses: count fields after the last ')'.
    closing = stat.rfind(b")")
    fields = stat[closing + 2 :].split() if closing >= 0 else []
    try:
        ticks = int(fields[19])
    except (IndexError, ValueError):
        return None
    return ticks if ticks >= 0 else None


def boot_id() -> str | None:
    if not kernel.PROC:
        return None
    try:
        return _BOOT_ID_PATH.read_text().strip() or None
    except OSError:
        return None


class ProcessIdentity(NamedTuple):
    pid: int
    create_time: float
    boot_id: str | None
    uid: int
    start_ticks: int | None = None

    def to_json(self) -> str:
        return json.dumps(self._asdict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessIdentity | None:
        """Parse a record; None for anything that is not exactly a record."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        pid, create_time, boot, uid, ticks = (
            data.get("pid"),
            data.get("create_time"),
            data.get("boot_id"),
            data.get("uid"),
            data.get("start_ticks"),
        )
        if (
            not (ticks is None or type(ticks) is int)
            or type(pid) is not int
            or pid <= 0
            or type(uid) is not int
            or not isinstance(create_time, int | float)
            or isinstance(create_time, bool)
            or not (boot is None or isinstance(boot, str))
        ):
            return None
        return cls(
            pid=pid, create_time=float(create_time), boot_id=boot, uid=uid, start_ticks=ticks
        )


def current_identity() -> ProcessIdentity:
    """This process's identity. Where /proc has it, from /proc alone: the supervisor, which
    must stay small, then never loads psutil (4 MiB)."""
    pid = os.getpid()
    seen = _from_proc(pid)
    return seen if isinstance(seen, ProcessIdentity) else identity_of(pid)


_UNKNOWN = "unknown"  # no /proc to read it from: psutil's turn
_GONE = "gone"


def _from_proc(pid: int) -> ProcessIdentity | str:
    """The identity of live process `pid` from /proc alone (status and stat, no psutil: `status`
    and `stop` run in scripts and probes, psutil costs them 15 ms): `_GONE` for a process that
    is gone or a zombie, `_UNKNOWN` without /proc. The start time is what psutil computes from
    the same two numbers (boot time plus start ticks), so the records agree."""
    booted = _boot_time()
    if booted is None:
        return _UNKNOWN
    # Both files through one handle on the process's folder: a PID reused between two path
    # lookups would give two files of two processes.
    try:
        folder = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return _GONE
    try:
        stat, status = _read_in(folder, "stat"), _read_in(folder, "status")
    except OSError:
        return _GONE
    finally:
        os.close(folder)
    return identity_from_proc(pid, stat, status, booted, boot_id())


def _read_in(folder: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=folder)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def identity_from_proc(
    pid: int, stat: bytes, status: bytes, booted: float, boot: str | None
) -> ProcessIdentity | str:
    """The identity that /proc/PID/stat and /proc/PID/status describe; `_GONE` for a zombie,
    a thread (its Tgid is another PID), or files that are not what they should be."""
    ticks, uid = parse_start_ticks(stat), parse_real_uid(status)
    if ticks is None or uid is None or parse_state(stat) in (b"Z", b"X"):
        return _GONE
    if _status_number(status, b"Tgid:") != pid:
        return _GONE
    return ProcessIdentity(
        pid=pid,
        create_time=booted + ticks / os.sysconf("SC_CLK_TCK"),
        boot_id=boot,
        uid=uid,
        start_ticks=ticks,
    )


def parse_state(stat: bytes) -> bytes | None:
    """Field 3 of a /proc/PID/stat line (R, S, Z, ...); None if the line is not one."""
    closing = stat.rfind(b")")
    fields = stat[closing + 2 :].split() if closing >= 0 else []
    return fields[0] if fields else None


def parse_real_uid(status: bytes) -> int | None:
    """The real uid from the `Uid:` line of /proc/PID/status; None if there is none."""
    return _status_number(status, b"Uid:")


def _status_number(status: bytes, key: bytes) -> int | None:
    """The first number on the `key` line of /proc/PID/status (the kernel escapes a newline in
    the process's name, so a line that starts with `key` is the kernel's)."""
    for line in status.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == key and fields[1].isdigit():
            return int(fields[1])
    return None


def _boot_time(stat: str = "/proc/stat") -> float | None:
    """When this machine booted, in seconds since the epoch."""
    if not kernel.PROC:
        return None
    try:
        with open(stat, "rb") as handle:
            return parse_boot_time(handle.read())
    except OSError:
        return None


def parse_boot_time(stat: bytes) -> float | None:
    """The `btime` line of /proc/stat; None if there is none."""
    for line in stat.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == b"btime" and fields[1].isdigit():
            return float(fields[1])
    return None


def identity_of(pid: int) -> ProcessIdentity:
    """Raises psutil.NoSuchProcess if the process is gone."""
    import psutil

    proc = psutil.Process(pid)
    with proc.oneshot():
        return ProcessIdentity(
            pid=pid,
            create_time=proc.create_time(),
            boot_id=boot_id(),
            uid=proc.uids().real,
            start_ticks=start_ticks(pid),
        )


def is_process_alive(pid: int, server_name: str = "") -> bool:
    """True if `pid` names a live (not zombie) process.

    This is the seed's liveness check and nothing more: it does not prove the process is the
    server called `server_name` (a name in a command line proves nothing). Use
    `validate_pid_integrity` before signalling anything.
    """
    if pid <= 0:
        return False
    seen = _from_proc(pid)
    if seen != _UNKNOWN:
        return isinstance(seen, ProcessIdentity)
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _from_psutil(pid: int) -> ProcessIdentity | str:
    import psutil

    if not is_process_alive(pid):
        return _GONE
    try:
        return identity_of(pid)
    except psutil.NoSuchProcess:
        return _GONE


PROCESS_GONE = "the process is gone"


def mismatch_reason(pid: int, record: ProcessIdentity | None) -> str | None:
    """Why live process `pid` is not the process `record` describes; None when it is."""
    if record is None:
        return "no server holds the lock for it"
    if record.pid != pid:
        return f"the server's lock is held by PID {record.pid}, not {pid}"
    actual = _from_proc(pid)
    if actual == _UNKNOWN:
        actual = _from_psutil(pid)
    if not isinstance(actual, ProcessIdentity):
        return PROCESS_GONE
    if record.boot_id and actual.boot_id and record.boot_id != actual.boot_id:
        return "the record is from an earlier boot"
    if record.start_ticks is not None and actual.start_ticks is not None:
        same_start = record.start_ticks == actual.start_ticks
    else:
        same_start = abs(actual.create_time - record.create_time) <= _CREATE_TIME_TOLERANCE
    if not same_start:
        return "it started at a different time than our server did (the PID was reused)"
    if actual.uid != os.getuid():
        return f"it runs as uid {actual.uid}, not as you (uid {os.getuid()})"
    return None
