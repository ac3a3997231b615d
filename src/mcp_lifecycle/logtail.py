"""Reading a server's log: the last lines, and following it across rotation."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

_CHUNK = 65536


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
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace")
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                time.sleep(interval)  # between the rename and the new file
                continue
            if current.st_ino != inode or current.st_size < handle.tell():
                # Rotated or truncated: drain what the old file got since our last read, then
                # every file rotated out since (fast writers rotate many times an interval).
                pending += handle.read()
                if current.st_ino != inode:
                    for missed in _rotated_since(path, inode):
                        pending += _read_whole(missed)
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace")
                handle.close()
                handle = open(path, "rb")  # noqa: SIM115
                inode = os.fstat(handle.fileno()).st_ino
                continue
            time.sleep(interval)
    finally:
        handle.close()


def _rotated_since(path: Path, inode: int) -> list[Path]:
    """The backups (`<log>.1`, `.2`, ...) newer than the file with `inode`, oldest first.

    Rotation renames `<log>` to `.1`, `.1` to `.2` and so on: the files between ours and `.1`
    were written and rotated out while we slept. If ours is gone too, every backup is newer.
    """
    newer = []
    index = 1
    while True:
        backup = path.with_name(f"{path.name}.{index}")
        try:
            found = os.stat(backup).st_ino
        except OSError:
            break
        if found == inode:
            break
        newer.append(backup)
        index += 1
    return newer[::-1]


def _read_whole(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""
