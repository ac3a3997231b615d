"""Reading a server's log: the last lines, and following it across rotation."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

_CHUNK = 65536
# A look at the backups while a writer rotates them is taken again, this often, this far apart.
_LOOKS = 100
_BETWEEN_LOOKS = 0.001


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of `path`, reading only as much of the end as it needs."""
    if count <= 0:
        return []
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count:
            step = min(_CHUNK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return list(deque(lines, maxlen=count))


def follow(
    path: Path, should_stop: Callable[[], bool] = lambda: False, interval: float = 0.2
) -> Iterator[str]:
    """Yield lines appended to `path` from now on; reopen it when it is rotated or truncated."""
    handle = open(path, "rb")  # noqa: SIM115 - reopened on rotation, closed in finally
    try:
        handle.seek(0, os.SEEK_END)
        inode = os.fstat(handle.fileno()).st_ino
        pending = b""
        while not should_stop():
            chunk = handle.read(_CHUNK)
            if not chunk:
                try:
                    # Opened before the old file is drained: whatever rotates from here on is
                    # read through this handle or found among the backups next time.
                    current = open(path, "rb")  # noqa: SIM115 - becomes `handle` or is closed
                except FileNotFoundError:
                    time.sleep(interval)  # between the rename and the new file
                    continue
                current_inode = os.fstat(current.fileno()).st_ino
                if current_inode == inode and os.fstat(current.fileno()).st_size >= handle.tell():
                    current.close()
                    time.sleep(interval)
                    continue
                # Rotated or truncated: drain what the old file got since our last read, then
                # every file rotated out since (fast writers rotate many times an interval).
                chunk = handle.read()
                if current_inode != inode:
                    chunk += _read_rotated_between(path, newer=current_inode, older=handle)
                handle.close()
                handle, inode = current, current_inode
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode("utf-8", errors="replace")
    finally:
        handle.close()


def _read_rotated_between(path: Path, newer: int, older: BinaryIO) -> bytes:
    """What the backups (`<log>.1`, `.2`, ...) written after the file open as `older` and
    before `newer` hold, oldest first.

    Rotation renames `<log>` to `.1`, `.1` to `.2` and so on, newest at `.1`: the files between
    `newer` (or `.1`, if `newer` is still the live file) and `older` were written and rotated
    out while we slept. A writer may be rotating while we look: halfway through, `.1` is
    missing and the chain looks empty. A look is trusted only when it reaches `older` (unless
    `older` was deleted, past the last backup) and the names still point at the same files
    after it was read.
    """
    data = b""
    for look in range(_LOOKS):
        if look:
            time.sleep(_BETWEEN_LOOKS)  # let a rotation under way finish
        before = _backups(path)
        status = os.fstat(older.fileno())
        data, complete = _read_chain(before, newer=newer, older=status.st_ino)
        reached = status.st_nlink == 0 or any(inode == status.st_ino for _, inode in before)
        if complete and reached and _backups(path) == before:
            break
    return data


def _backups(path: Path) -> list[tuple[Path, int]]:
    found: list[tuple[Path, int]] = []
    index = 1
    while True:
        backup = path.with_name(f"{path.name}.{index}")
        try:
            found.append((backup, os.stat(backup).st_ino))
        except OSError:
            return found
        index += 1


def _read_chain(backups: list[tuple[Path, int]], newer: int, older: int) -> tuple[bytes, bool]:
    """The contents of the backups between `newer` and `older`, oldest first, and whether every
    one of them was still the file the listing named when it was read."""
    between: list[tuple[Path, int]] = []
    for backup, inode in backups:
        if inode == older:
            break
        if inode == newer:
            between.clear()  # everything listed so far is newer than the file we now follow
        else:
            between.append((backup, inode))
    chunks: list[bytes] = []
    for backup, inode in reversed(between):
        try:
            with open(backup, "rb") as handle:
                if os.fstat(handle.fileno()).st_ino != inode:
                    return b"".join(chunks), False
                chunks.append(handle.read())
        except OSError:
            return b"".join(chunks), False
    return b"".join(chunks), True
