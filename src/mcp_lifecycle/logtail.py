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
                # Rotated or truncated: drain what the old file got since our last read.
                pending += handle.read()
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
