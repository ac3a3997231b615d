"""Owner-only files: the cache root check, atomic writes and reads that never follow symlinks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from pathlib import Path

from mcp_lifecycle.errors import InsecurePathError


def validate_cache_ownership(path: Path) -> None:
    """Refuse a cache root that is a symlink, not a directory, not ours, or writable by others.

    A directory others can write to lets them plant a snapshot or PID file we would trust.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise InsecurePathError(
            f"cache root {path} does not exist", hint="run `start` once to create it"
        ) from None
    if stat.S_ISLNK(st.st_mode):
        raise InsecurePathError(
            f"cache root {path} is a symlink; refusing to follow it",
            hint="point cache_root at a real directory you own",
        )
    if not stat.S_ISDIR(st.st_mode):
        raise InsecurePathError(
            f"cache root {path} is not a directory", hint="remove it or choose another cache_root"
        )
    uid = os.getuid()
    if st.st_uid != uid:
        raise InsecurePathError(
            f"cache root {path} is owned by uid {st.st_uid}, but you are uid {uid}",
            hint="use a cache_root you own (set MCP_SERVER_CACHE_ROOT)",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecurePathError(
            f"cache root {path} is writable by others (mode {stat.S_IMODE(st.st_mode):03o})",
            hint=f"run `chmod 700 {path}`",
        )


def ensure_cache_root(path: Path) -> Path:
    """Create the cache root owner-only if missing, then validate it."""
    if not os.path.lexists(path):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700, parents=True)
    validate_cache_ownership(path)
    return path


def not_a_file(path: Path) -> InsecurePathError:
    return InsecurePathError(
        f"{path} is not a regular file (a directory or device is in its place)",
        hint=f"move it out of the way: mv {path} {path}.bad",
    )


def refuse_symlink(path: Path) -> None:
    if os.path.islink(path):
        raise InsecurePathError(
            f"{path} is a symlink; refusing to follow it", hint=f"remove it: rm {path}"
        )


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Publish `data` at `path` so no reader ever sees a torn file.

    A unique temp file in the same folder, fsync, then `os.replace`. On any failure the temp
    file is removed and the old file is left whole.
    """
    refuse_symlink(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_no_follow(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that never follows a symlink (InsecurePathError) and names a directory in a
    file's place (InsecurePathError); other errors, FileNotFoundError included, as they are."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InsecurePathError(
                f"{path} is a symlink; refusing to follow it", hint=f"remove it: rm {path}"
            ) from None
        if exc.errno == errno.EISDIR:
            raise not_a_file(path) from None
        raise


def flock_exclusive(fd: int, wait_seconds: float) -> bool:
    """Take an exclusive flock on `fd`, retrying until `wait_seconds` pass; False if another
    holder keeps it. Never blocks indefinitely: a stuck holder must not hang us."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        else:
            return True


def read_no_follow(path: Path, max_bytes: int) -> bytes | None:
    """Read at most `max_bytes` of a regular file; None if it does not exist.

    Raises InsecurePathError for a symlink and IsADirectoryError for anything not a regular file.
    """
    try:
        fd = open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        return os.read(fd, max_bytes)
    finally:
        os.close(fd)
