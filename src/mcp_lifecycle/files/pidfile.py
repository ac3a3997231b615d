"""The PID file and the server's lock.

The running server holds an exclusive `flock` on `<server>.lock` for its whole life and writes its
identity into it. The kernel drops the lock when the server dies, so a free lock proves that no
server is running, whatever the PID file says.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

from mcp_lifecycle.errors import CorruptFile, InsecurePathError
from mcp_lifecycle.files import kernel
from mcp_lifecycle.files.identity import ProcessIdentity, current_identity
from mcp_lifecycle.files.private import (
    atomic_write,
    flock_exclusive,
    not_a_file,
    open_no_follow,
    read_no_follow,
)

# Linux caps pid_max at 2**22.
PID_MAX = 4_194_304
_PID_FILE_MAX_BYTES = 64
_RECORD_MAX_BYTES = 4096
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT


def parse_pid(data: bytes) -> int:
    """The PID in a PID file's bytes; CorruptFile for anything else."""
    # Strip the bytes: str.strip() would also take control characters (\x1c) for blanks.
    text = data.strip().decode("ascii", errors="replace")
    if not text.isascii() or not text.isdigit():
        raise CorruptFile(f"PID file holds {text[:40]!r}, not a process ID")
    pid = int(text)
    if not 1 <= pid <= PID_MAX:
        raise CorruptFile(f"PID file holds {pid}, which cannot be a server's process ID")
    return pid


def write_pid_file(path: Path, pid: int | None = None) -> None:
    """Atomically write `pid` (default: this process) as text, mode 0o600, never via a symlink."""
    atomic_write(path, f"{os.getpid() if pid is None else pid}\n".encode())


def read_pid_file(path: Path) -> int | None:
    """The PID in `path`, None if there is no file; CorruptFile or InsecurePathError otherwise."""
    try:
        data = read_no_follow(path, _PID_FILE_MAX_BYTES + 1)
    except IsADirectoryError:
        raise not_a_file(path) from None
    if data is None:
        return None
    if len(data) > _PID_FILE_MAX_BYTES:
        raise CorruptFile(f"PID file {path} is too large to be a PID file")
    return parse_pid(data)


def remove_pid_file(path: Path, pid: int) -> bool:
    """Remove the PID file only if it still names `pid` (another server may have replaced it)."""
    try:
        if read_pid_file(path) != pid:
            return False
    except (CorruptFile, InsecurePathError):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def lock_is_held(path: Path) -> bool:
    """Whether some process holds the server lock right now.

    Probes with a shared lock, so concurrent probes never collide with each other; the server
    retries its exclusive lock for long enough to outlast a probe.
    """
    try:
        fd = open_no_follow(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_a_file(path)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's shared lock
    return False


def read_lock_record(path: Path) -> ProcessIdentity | None:
    """The identity the lock holder wrote; None if missing or unreadable."""
    try:
        data = read_no_follow(path, _RECORD_MAX_BYTES)
    except (OSError, InsecurePathError):
        return None
    if not data:
        return None
    return ProcessIdentity.from_json(data.decode("utf-8", errors="replace"))


def record_held_by(pid: int, lock_name: str) -> ProcessIdentity | None:
    """The identity record of a lock file called `lock_name` that process `pid` holds open and
    exclusively locked, even if that file was deleted or moved since; None if it holds none.

    Read from the kernel's view of the process (/proc/PID/fd, Linux; same user or root only),
    never from anything the process says about itself.
    """
    if not kernel.PROC:
        return None
    fd_dir = f"/proc/{pid}/fd"
    try:
        entries = os.listdir(fd_dir)
    except OSError:
        return None
    for entry in entries:
        try:
            target = os.readlink(f"{fd_dir}/{entry}")
        except OSError:
            continue
        if os.path.basename(target.removesuffix(" (deleted)")) != lock_name:
            continue
        record = _locked_record(f"{fd_dir}/{entry}")
        if record is not None and record.pid == pid:
            return record
    return None


def _locked_record(fd_path: str) -> ProcessIdentity | None:
    """The record in the file behind `fd_path` if someone holds its exclusive lock."""
    try:
        # The magic link reopens the very file the process holds, deleted or not.
        fd = os.open(fd_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            data = os.pread(fd, _RECORD_MAX_BYTES, 0)
            return ProcessIdentity.from_json(data.decode("utf-8", errors="replace"))
        return None  # not locked: whoever opened it is not holding a server's lock
    finally:
        os.close(fd)


class ServerLock:
    """The exclusive lock a running server holds; its file records the holder's identity."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait_seconds: float = 1.0) -> bool:
        """Take the lock, retrying briefly to outlast readers' probes.

        False if a server holds it.
        """
        fd = open_no_follow(self.path, _LOCK_FLAGS)
        if not flock_exclusive(fd, wait_seconds):
            os.close(fd)
            return False
        # Only now, with the lock won, is it safe to truncate and write the record.
        record = current_identity().to_json().encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)
        os.fchmod(fd, 0o600)
        self._fd = fd
        return True

    def holds(self, path: Path) -> bool:
        """Whether `path` is still the very file we hold locked (not deleted or replaced)."""
        if self._fd is None:
            return False
        try:
            on_disk = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def forget(self) -> None:
        """In a forked child: close our copy of the fd. The parent keeps the lock (flock locks
        belong to the open file description, released only when its last fd closes)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        """Unlock by closing; the file is never deleted (deleting it would break exclusion)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


class StartLock:
    """Serialises `start` commands so that concurrent starts yield exactly one server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        fd = open_no_follow(self.path, _LOCK_FLAGS)
        if not flock_exclusive(fd, timeout):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
