"""The corners of the lock, identity and snapshot code that real runs reach only by chance."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_lifecycle import control_socket, identity
from mcp_lifecycle.control_socket import ControlSocket, Holder, address, holder
from mcp_lifecycle.identity import current_identity, mismatch_reason, parse_start_ticks
from mcp_lifecycle.pidfile import ServerLock
from mcp_lifecycle.snapshot import update_runtime_health


def test_lock_in_a_missing_folder_raises_the_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ServerLock(tmp_path / "missing" / "s.lock").acquire()


def test_lock_knows_whether_its_file_is_still_there(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    lock = ServerLock(path)
    assert not lock.holds(path)
    assert lock.acquire()
    assert lock.holds(path)
    path.unlink()
    assert not lock.holds(path)
    path.write_text("")  # a new file in its place is not the one we hold
    assert not lock.holds(path)
    lock.release()
    lock.forget()  # nothing held: nothing to close


def test_snapshot_update_gives_up_on_a_stuck_lock(tmp_path: Path) -> None:
    path = tmp_path / "runtime_health.json"
    fd = os.open(tmp_path / "runtime_health.json.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(TimeoutError):
            update_runtime_health(path, lambda s: None, timeout=0.05)
    finally:
        os.close(fd)
    assert update_runtime_health(path, lambda s: None).state is None


@given(st.binary(max_size=400))
def test_start_ticks_parser_never_raises(data: bytes) -> None:
    ticks = parse_start_ticks(data)
    assert ticks is None or ticks >= 0


def test_start_ticks_of_real_and_odd_lines() -> None:
    with open("/proc/self/stat", "rb") as handle:
        assert parse_start_ticks(handle.read()) == identity.start_ticks(os.getpid())
    fields = " ".join(str(n) for n in range(3, 25))
    assert parse_start_ticks(f"1 (a) b) {fields}".encode()) == 22
    assert parse_start_ticks(b"no parenthesis at all") is None
    assert identity.start_ticks(2**22 + 1) is None


def test_a_process_that_vanishes_mid_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # The window between "alive" and reading its identity cannot be timed; make it happen.
    me = current_identity()

    def vanished(pid: int) -> identity.ProcessIdentity:
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(identity, "identity_of", vanished)
    assert mismatch_reason(me.pid, me) == "the process is gone"


def test_control_socket_claim_owner_release(tmp_path: Path) -> None:
    name = address(tmp_path, "srv")
    assert holder(name) is None
    first = ControlSocket(name)
    assert first.claim()
    assert holder(name) == Holder(os.getpid(), os.getuid())
    assert not ControlSocket(name).claim()
    first.release()
    first.release()  # twice is harmless
    assert holder(name) is None
    again = ControlSocket(name)
    assert again.claim()
    child = os.fork()
    if child == 0:  # a forked worker drops its copy, and must not keep the name alive
        again.forget()
        again.forget()
        os._exit(0)
    os.waitpid(child, 0)
    assert holder(name) == Holder(os.getpid(), os.getuid())
    again.release()
    assert holder(name) is None


def test_control_socket_names_differ_by_cache_root_and_server(tmp_path: Path) -> None:
    assert address(tmp_path, "a") != address(tmp_path, "b")
    assert address(tmp_path / "x", "a") != address(tmp_path / "y", "a")
    assert address(tmp_path, "a") == address(tmp_path / ".", "a")


def test_control_socket_bind_errors_other_than_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    with pytest.raises(PermissionError):
        ControlSocket(b"\0mcp-lifecycle/test-eacces").claim()


def test_without_abstract_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control_socket, "SUPPORTED", False)
    name = b"\0mcp-lifecycle/unsupported"
    assert ControlSocket(name).claim() is True
    assert holder(name) is None


def test_forked_children_close_their_lock_fds() -> None:
    from mcp_lifecycle.snapshot import _close_all

    read_fd, write_fd = os.pipe()
    fds = {read_fd, write_fd}
    _close_all(fds)
    assert fds == set()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(read_fd)
    _close_all({read_fd})  # already closed: ignored
    ControlSocket(b"\0mcp-lifecycle/never-claimed").forget()


def test_a_directory_in_place_of_the_lock(tmp_path: Path) -> None:
    from mcp_lifecycle.errors import InsecurePathError
    from mcp_lifecycle.pidfile import lock_is_held

    path = tmp_path / "s.lock"
    path.mkdir()
    with pytest.raises(InsecurePathError, match="not a regular file"):
        ServerLock(path).acquire()
    with pytest.raises(InsecurePathError, match="not a regular file"):
        lock_is_held(path)
