from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_lifecycle import is_process_alive, validate_pid_integrity
from mcp_lifecycle.files.identity import boot_id, current_identity, mismatch_reason
from mcp_lifecycle.files.pidfile import ServerLock, write_pid_file


def test_is_process_alive() -> None:
    assert is_process_alive(os.getpid(), "anything")
    assert not is_process_alive(0)
    assert not is_process_alive(-3)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not is_process_alive(proc.pid)


def test_zombie_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Wait for its exit without reaping it: a zombie, however slow the machine.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        assert not is_process_alive(proc.pid)
    finally:
        proc.wait()


def test_mismatch_reasons() -> None:
    me = current_identity()
    assert mismatch_reason(me.pid, me) is None
    assert mismatch_reason(me.pid, None) == "no server holds the lock for it"
    assert "held by PID" in (mismatch_reason(me.pid, me._replace(pid=1)) or "")
    assert me.start_ticks is not None
    reused = me._replace(start_ticks=me.start_ticks - 1)
    assert "reused" in (mismatch_reason(me.pid, reused) or "")
    # Without start ticks (no /proc), the start time decides, to a tolerance.
    no_ticks = me._replace(start_ticks=None)
    assert mismatch_reason(me.pid, no_ticks) is None
    old = no_ticks._replace(create_time=me.create_time - 100)
    assert "reused" in (mismatch_reason(me.pid, old) or "")
    # A wall-clock step moves create_time, but the start ticks still prove identity.
    stepped = me._replace(create_time=me.create_time + 5)
    assert mismatch_reason(me.pid, stepped) is None
    rebooted = me._replace(boot_id="another-boot")
    if boot_id() is not None:
        assert "earlier boot" in (mismatch_reason(me.pid, rebooted) or "")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    gone = me._replace(pid=proc.pid)
    assert mismatch_reason(proc.pid, gone) == "the process is gone"


def test_foreign_uid_is_not_ours() -> None:
    me = current_identity()
    # PID 1 runs as root here; pretend we recorded it to check the uid rule in isolation.
    if os.getuid() == 0:
        return
    init = me._replace(pid=1)
    assert mismatch_reason(1, init) is not None


def test_validate_pid_integrity(tmp_path: Path) -> None:
    pid_path = tmp_path / "srv.pid"
    ok, reason = validate_pid_integrity(os.getpid(), pid_path, "srv")
    assert not ok
    assert "not running" in reason
    lock = ServerLock(tmp_path / "srv.lock")
    assert lock.acquire()
    try:
        write_pid_file(pid_path)
        ok, reason = validate_pid_integrity(os.getpid(), pid_path, "srv")
        assert ok, reason
        ok, reason = validate_pid_integrity(1, pid_path, "srv")
        assert not ok
        assert "not 1" in reason
    finally:
        lock.release()
    ok, reason = validate_pid_integrity(os.getpid(), pid_path, "srv")
    assert not ok
    assert "does not hold the server's lock" in reason


def test_boot_id_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_lifecycle.files.identity as identity

    monkeypatch.setattr(identity, "_BOOT_ID_PATH", Path("/nonexistent/boot_id"))
    assert identity.boot_id() is None
    assert identity.current_identity().boot_id is None


def test_without_proc_identity_comes_from_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc is missing (macOS), the start time stands in for the start ticks, and the
    proof rules still hold: a process is itself, and a record of another start is not it."""
    from mcp_lifecycle.files import identity, kernel, pidfile

    monkeypatch.setattr(kernel, "PROC", False)
    assert identity.start_ticks(os.getpid()) is None
    assert identity.boot_id() is None
    assert identity._boot_time() is None
    me = identity.current_identity()
    assert me.start_ticks is None
    assert me.boot_id is None
    assert identity.mismatch_reason(os.getpid(), me) is None
    earlier = identity.ProcessIdentity(me.pid, me.create_time - 60, None, me.uid)
    assert "different time" in (identity.mismatch_reason(os.getpid(), earlier) or "")
    assert pidfile.record_held_by(os.getpid(), "server.lock") is None


def test_boot_time_is_read_or_none(tmp_path: Path) -> None:
    from mcp_lifecycle.files.identity import _boot_time, parse_boot_time

    assert parse_boot_time(b"cpu  1 2 3\nbtime 1795000000\nprocesses 9\n") == 1795000000.0
    assert parse_boot_time(b"btime soon\n") is None
    assert parse_boot_time(b"") is None
    assert _boot_time(str(tmp_path / "missing")) is None
    assert _boot_time() is not None  # this machine's


@given(st.binary())
def test_boot_time_parser_never_raises(data: bytes) -> None:
    from mcp_lifecycle.files.identity import parse_boot_time

    value = parse_boot_time(data)
    assert value is None or value >= 0


def test_identity_from_proc_alone_agrees_with_psutil() -> None:
    """`status` and `stop` read a process's identity from /proc (psutil costs them 15 ms): it
    must be the one psutil gives."""
    from mcp_lifecycle.files.identity import _from_proc, identity_of

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        seen, known = _from_proc(proc.pid), identity_of(proc.pid)
        assert isinstance(seen, type(known))
        assert seen._replace(create_time=0) == known._replace(create_time=0)
        assert abs(seen.create_time - known.create_time) < 0.05
        assert mismatch_reason(proc.pid, known) is None
        assert mismatch_reason(proc.pid, seen) is None
    finally:
        proc.kill()
        proc.wait()
    assert _from_proc(proc.pid) == "gone"


STAT = b"4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2"
STATUS = (
    b"Name:\tpython\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n"
    b"Uid:\t1000\t1001\t1001\t1001\n"
)


def test_identity_from_proc_files() -> None:
    from mcp_lifecycle.files.identity import (
        identity_from_proc,
        parse_real_uid,
        parse_state,
    )

    me = identity_from_proc(4242, STAT, STATUS, 1_700_000_000.0, "boot")
    assert not isinstance(me, str)
    assert (me.pid, me.uid, me.start_ticks, me.boot_id) == (4242, 1000, 987654, "boot")
    assert me.create_time == 1_700_000_000.0 + 987654 / os.sysconf("SC_CLK_TCK")
    zombie = STAT.replace(b") S ", b") Z ")
    assert identity_from_proc(4242, zombie, STATUS, 0.0, None) == "gone"
    assert identity_from_proc(4242, b"garbage", STATUS, 0.0, None) == "gone"
    assert identity_from_proc(4242, STAT, b"Name:\tx\n", 0.0, None) == "gone"
    # A thread's ID names a folder in /proc too; it is not a process.
    thread = STATUS.replace(b"Tgid:\t4242", b"Tgid:\t4200")
    assert identity_from_proc(4242, STAT, thread, 0.0, None) == "gone"
    assert parse_state(STAT) == b"S"
    assert parse_state(b"no closing parenthesis") is None
    assert parse_state(b"1 (x)") is None
    assert parse_real_uid(STATUS) == 1000
    assert parse_real_uid(b"Uid:\tnobody\n") is None


@given(st.binary(), st.binary())
def test_proc_parsers_never_raise(stat: bytes, status: bytes) -> None:
    from mcp_lifecycle.files.identity import identity_from_proc

    found = identity_from_proc(1, stat, status, 0.0, None)
    assert found == "gone" or found.pid == 1  # type: ignore[union-attr]


def test_without_proc_liveness_comes_from_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_lifecycle.files import identity, kernel

    monkeypatch.setattr(kernel, "PROC", False)
    assert identity.is_process_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        assert not identity.is_process_alive(proc.pid)  # a zombie
        me = identity.current_identity()
        gone = me._replace(pid=proc.pid)
        assert identity.mismatch_reason(proc.pid, gone) == "the process is gone"
    finally:
        proc.wait()
    assert not identity.is_process_alive(proc.pid)


def test_a_process_that_exits_between_its_folder_and_its_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The folder opened, then the process exited (the files of a reaped process can no longer
    be read): it is gone. The window cannot be timed: make it happen."""
    from mcp_lifecycle.files import identity

    def exited(folder: int, name: str) -> bytes:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(identity, "_read_in", exited)
    assert identity._from_proc(os.getpid()) == "gone"


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_a_verified_process_that_exits_says_so_alike_with_or_without_a_pidfd(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stop` kills a hung server's group, then the server: by then it has exited, which a
    signal through a pidfd reports as ProcessLookupError. Without pidfds (macOS) the same, not
    "refusing to signal PID N: the process is gone" and exit 8."""
    import signal

    from mcp_lifecycle.control.process import VerifiedProcess
    from mcp_lifecycle.errors import StalePid
    from mcp_lifecycle.files.identity import identity_of

    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = identity_of(proc.pid)
        target = VerifiedProcess(proc.pid, record)
        assert (target.pidfd is not None) == pidfd
        proc.kill()
        proc.wait()
        with pytest.raises(ProcessLookupError):
            target.send(signal.SIGKILL)
        target.close()
        # A live process that is not the one recorded is still refused.
        me = VerifiedProcess(os.getpid(), current_identity())
        me.pidfd = None if not pidfd else me.pidfd
        me.identity = record._replace(pid=os.getpid())
        if not pidfd:
            with pytest.raises(StalePid, match="started at a different time"):
                me.send(0)
        me.close()
    finally:
        proc.kill()
        proc.wait()
