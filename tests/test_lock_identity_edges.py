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

from mcp_lifecycle.files import identity, name_socket
from mcp_lifecycle.files.identity import current_identity, mismatch_reason, parse_start_ticks
from mcp_lifecycle.files.name_socket import Holder, address, holder
from mcp_lifecycle.files.pidfile import ServerLock
from mcp_lifecycle.files.snapshot import update_runtime_health
from mcp_lifecycle.server.name_claim import NameSocket


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
    # The window between "alive" and reading its identity cannot be timed; make it happen
    # (through psutil, as where there is no /proc: from /proc, one read is the whole check).
    from mcp_lifecycle.files import kernel

    me = current_identity()

    def vanished(pid: int) -> identity.ProcessIdentity:
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(kernel, "PROC", False)
    monkeypatch.setattr(identity, "identity_of", vanished)
    assert mismatch_reason(me.pid, me) == "the process is gone"


def test_name_socket_claim_owner_release(tmp_path: Path) -> None:
    name = address(tmp_path, "srv")
    assert holder(name) is None
    assert not name_socket.is_bound(name)
    first = NameSocket(name)
    assert first.claim()
    assert name_socket.is_bound(name)
    assert holder(name) == Holder(os.getpid(), os.getuid())
    assert not NameSocket(name).claim()
    first.release()
    first.release()  # twice is harmless
    assert holder(name) is None
    again = NameSocket(name)
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


def test_name_socket_names_differ_by_cache_root_and_server(tmp_path: Path) -> None:
    assert address(tmp_path, "a") != address(tmp_path, "b")
    assert address(tmp_path / "x", "a") != address(tmp_path / "y", "a")
    assert address(tmp_path, "a") == address(tmp_path / ".", "a")


def test_name_socket_bind_errors_other_than_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", refuse)
    with pytest.raises(PermissionError):
        NameSocket(b"\0mcp-lifecycle/test-eacces").claim()


def test_without_abstract_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(name_socket, "SUPPORTED", False)
    name = b"\0mcp-lifecycle/unsupported"
    assert NameSocket(name).claim() is True
    assert holder(name) is None
    assert name_socket.is_bound(name) is False


def test_forked_children_close_their_lock_fds() -> None:
    from mcp_lifecycle.files.snapshot import _close_all

    read_fd, write_fd = os.pipe()
    fds = {read_fd, write_fd}
    _close_all(fds)
    assert fds == set()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(read_fd)
    _close_all({read_fd})  # already closed: ignored
    NameSocket(b"\0mcp-lifecycle/never-claimed").forget()


def test_a_directory_in_place_of_the_lock(tmp_path: Path) -> None:
    from mcp_lifecycle.errors import InsecurePathError
    from mcp_lifecycle.files.pidfile import lock_is_held

    path = tmp_path / "s.lock"
    path.mkdir()
    with pytest.raises(InsecurePathError, match="not a regular file"):
        ServerLock(path).acquire()
    with pytest.raises(InsecurePathError, match="not a regular file"):
        lock_is_held(path)


def test_a_held_lock_is_found_through_the_holders_file_descriptors(tmp_path: Path) -> None:
    from mcp_lifecycle.files.pidfile import ServerLock, record_held_by

    lock = ServerLock(tmp_path / "srv.lock")
    assert lock.acquire()
    try:
        found = record_held_by(os.getpid(), "srv.lock")
        assert found is not None
        assert found.pid == os.getpid()
        (tmp_path / "srv.lock").unlink()  # deleted: the kernel still knows the file
        assert record_held_by(os.getpid(), "srv.lock") == found
        assert record_held_by(os.getpid(), "other.lock") is None
    finally:
        lock.release()
    assert record_held_by(os.getpid(), "srv.lock") is None
    assert record_held_by(999_999_999, "srv.lock") is None  # no such process


def test_what_a_held_lock_is_not(tmp_path: Path) -> None:
    """Open but unlocked, locked with another process's record, a directory, another user's
    file, a socket: none of them proves anything."""
    import fcntl

    from mcp_lifecycle.files.pidfile import record_held_by

    fds: list[int] = []
    try:
        unlocked = tmp_path / "a" / "srv.lock"
        unlocked.parent.mkdir()
        unlocked.write_text(identity.current_identity().to_json())
        fds.append(os.open(unlocked, os.O_RDONLY))

        foreign = tmp_path / "b" / "srv.lock"
        foreign.parent.mkdir()
        foreign.write_text('{"pid": 1, "create_time": 1.0, "boot_id": null, "uid": 0}')
        fds.append(os.open(foreign, os.O_RDWR))
        fcntl.flock(fds[-1], fcntl.LOCK_EX)

        folder = tmp_path / "c" / "srv.lock"
        folder.mkdir(parents=True)
        fds.append(os.open(folder, os.O_RDONLY | os.O_DIRECTORY))

        theirs = tmp_path / "d" / "srv.lock"
        theirs.parent.mkdir()
        theirs.write_text(identity.current_identity().to_json())
        os.chown(theirs, 54321, 54321)
        fds.append(os.open(theirs, os.O_RDWR))
        fcntl.flock(fds[-1], fcntl.LOCK_EX)

        sock_path = tmp_path / "e" / "srv.lock"
        sock_path.parent.mkdir()
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(sock_path))
        fds.append(os.open(sock_path, os.O_PATH))  # reopening a socket's inode fails: ENXIO

        assert record_held_by(os.getpid(), "srv.lock") is None
        server.close()
    finally:
        for fd in fds:
            os.close(fd)


def test_a_descriptor_that_closes_while_looked_at(monkeypatch: pytest.MonkeyPatch) -> None:
    """The race between listing a process's descriptors and reading one (cannot be staged
    reliably, so os.readlink fails as it would)."""
    from mcp_lifecycle.files.pidfile import record_held_by

    def vanished(path: str) -> str:
        raise FileNotFoundError(path)

    monkeypatch.setattr(os, "readlink", vanished)
    assert record_held_by(os.getpid(), "srv.lock") is None


def test_forget_drops_our_copy_and_the_name_dies_with_the_last_one(tmp_path: Path) -> None:
    import time

    name = address(tmp_path, "forgotten")
    claim = NameSocket(name)
    assert claim.claim()
    claim.forget()  # as a forked child does; here it was the only copy
    claim.forget()
    claim.release()  # nothing left to release
    # The answering thread wakes on the next connection, finds its socket closed, and ends.
    deadline = time.monotonic() + 5
    while holder(name) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert holder(name) is None
    again = NameSocket(name)
    assert again.claim()
    again.release()


def test_a_name_claim_says_who_holds_the_name() -> None:
    from mcp_lifecycle.files.identity import current_identity
    from mcp_lifecycle.files.name_socket import NameClaim

    ours = Holder(pid=os.getpid(), uid=os.getuid())
    assert NameClaim(ours, current_identity()).describe().endswith(", the server")
    assert NameClaim(ours, None).describe().endswith("which holds no lock of this server")
    stranger = Holder(pid=1, uid=os.getuid() + 1)
    assert NameClaim(stranger, None).describe().endswith("another user's process")
