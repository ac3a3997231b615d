from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_lifecycle import write_pid_file
from mcp_lifecycle.errors import CorruptFile, InsecurePathError
from mcp_lifecycle.files.identity import ProcessIdentity, current_identity
from mcp_lifecycle.files.pidfile import (
    PID_MAX,
    ServerLock,
    StartLock,
    lock_is_held,
    parse_pid,
    read_lock_record,
    read_pid_file,
    remove_pid_file,
)


@given(st.binary(max_size=80))
def test_parse_pid_gives_a_pid_or_a_clean_error(data: bytes) -> None:
    try:
        pid = parse_pid(data)
    except CorruptFile as exc:
        message = exc.message
        assert "PID file" in message
    else:
        assert 1 <= pid <= PID_MAX
        assert data.strip() == str(pid).encode() or data.strip().lstrip(b"0") == str(pid).encode()


@given(st.integers(min_value=1, max_value=PID_MAX))
def test_parse_pid_round_trips(pid: int) -> None:
    assert parse_pid(f"{pid}\n".encode()) == pid


@pytest.mark.parametrize(
    "text", [b"0", b"-1", b"4194305", b"1e3", b"", b"  ", b"\xff", b"\x1c1", b"1\x85"]
)
def test_parse_pid_rejects(text: bytes) -> None:
    with pytest.raises(CorruptFile):
        parse_pid(text)


def test_write_pid_file_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "s.pid"
    write_pid_file(path, 1234)
    assert path.read_text() == "1234\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_pid_file(path)
    assert read_pid_file(path) == os.getpid()
    assert [p.name for p in tmp_path.iterdir()] == ["s.pid"]


def test_read_pid_file_cases(tmp_path: Path) -> None:
    path = tmp_path / "s.pid"
    assert read_pid_file(path) is None
    path.write_bytes(b"9" * 100)
    with pytest.raises(CorruptFile, match="too large"):
        read_pid_file(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(InsecurePathError, match="not a regular file"):
        read_pid_file(path)


def test_pid_file_symlink_is_refused_for_read_and_write(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "s.pid"
    link.symlink_to(target)
    with pytest.raises(InsecurePathError):
        read_pid_file(link)
    with pytest.raises(InsecurePathError):
        write_pid_file(link, 5)
    assert target.read_text() == "keep"


def test_remove_pid_file_only_removes_its_own(tmp_path: Path) -> None:
    path = tmp_path / "s.pid"
    write_pid_file(path, 100)
    assert remove_pid_file(path, 200) is False
    assert path.exists()
    assert remove_pid_file(path, 100) is True
    assert not path.exists()
    path.write_text("junk")
    assert remove_pid_file(path, 100) is False


def test_server_lock_excludes_and_records_identity(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    assert lock_is_held(path) is False
    first = ServerLock(path)
    assert first.acquire()
    assert first.held
    assert lock_is_held(path) is True
    assert read_lock_record(path) == current_identity()
    second = ServerLock(path)
    assert second.acquire(wait_seconds=0.05) is False
    first.release()
    assert not first.held
    assert path.exists(), "the lock file is never deleted"
    assert read_lock_record(path) is None
    assert lock_is_held(path) is False
    assert second.acquire(wait_seconds=0.05)
    second.release()


def test_lock_is_released_by_the_kernel_when_the_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    code = (
        "import sys, os; from pathlib import Path\n"
        "from mcp_lifecycle.files.pidfile import ServerLock\n"
        "lock = ServerLock(Path(sys.argv[1])); assert lock.acquire()\n"
        "print('held', flush=True); os._exit(0)  # dies without releasing\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "held"
    assert lock_is_held(path) is False
    record = read_lock_record(path)
    assert record is not None  # the dead holder's record stays; the free lock is what counts


def test_lock_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("")
    link = tmp_path / "s.lock"
    link.symlink_to(tmp_path / "real")
    with pytest.raises(InsecurePathError):
        ServerLock(link).acquire()
    with pytest.raises(InsecurePathError):
        lock_is_held(link)


def test_start_lock_times_out(tmp_path: Path) -> None:
    path = tmp_path / "s.start.lock"
    one, two = StartLock(path), StartLock(path)
    assert one.acquire(1)
    assert two.acquire(0.05) is False
    one.release()
    assert two.acquire(0.05)
    two.release()


@given(st.text(max_size=200))
def test_identity_record_parser_never_raises(text: str) -> None:
    record = ProcessIdentity.from_json(text)
    assert record is None or record.pid > 0


@pytest.mark.parametrize(
    "text",
    [
        '{"pid": 1, "create_time": 1.0, "boot_id": "b", "uid": 0}',
        '{"pid": 1, "create_time": 1, "boot_id": null, "uid": 0}',
    ],
)
def test_identity_record_parser_accepts(text: str) -> None:
    assert ProcessIdentity.from_json(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"pid": true, "create_time": 1.0, "boot_id": "b", "uid": 0}',
        '{"pid": 1, "create_time": true, "boot_id": "b", "uid": 0}',
        '{"pid": 1, "create_time": 1.0, "boot_id": 3, "uid": 0}',
        '{"pid": 0, "create_time": 1.0, "boot_id": "b", "uid": 0}',
        '{"pid": 1, "create_time": 1.0, "boot_id": "b"}',
    ],
)
def test_identity_record_parser_rejects(text: str) -> None:
    assert ProcessIdentity.from_json(text) is None


def test_lock_record_unreadable_and_release_when_not_held(tmp_path: Path) -> None:
    (tmp_path / "real").write_text('{"pid": 5}')
    link = tmp_path / "s.lock"
    link.symlink_to(tmp_path / "real")
    assert read_lock_record(link) is None
    lock = ServerLock(tmp_path / "other.lock")
    lock.release()  # never acquired: nothing happens
    assert not lock.held
    StartLock(tmp_path / "s.start.lock").release()


@pytest.mark.parametrize("error", [errno.EACCES, errno.ENOSPC])
def test_a_failed_pid_file_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    # Denied or full cannot be arranged as root on a real disk: the call fails as it would.
    path = tmp_path / "s.pid"
    write_pid_file(path, 4242)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        write_pid_file(path, 5353)
    monkeypatch.undo()
    assert read_pid_file(path) == 4242
    assert [p.name for p in tmp_path.iterdir()] == ["s.pid"]
