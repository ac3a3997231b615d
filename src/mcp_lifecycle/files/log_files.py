"""Log files: private (0600, never through a link), rotated by size; the detached server's
log with stdout and stderr following it."""

from __future__ import annotations

import io
import logging.handlers
import os
import sys
from pathlib import Path

from mcp_lifecycle.files.private import open_private_append


class PrivateLogHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose every file, the first and each after a rotation, is opened
    by `open_private_append`: 0600 from the first byte, and never through a planted link."""

    def _open(self) -> io.TextIOWrapper:
        fd = open_private_append(Path(self.baseFilename))
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def doRollover(self) -> None:
        if self.backupCount > 0:
            super().doRollover()
            return
        # With no backups, Python's handler reopens the same file and lets it grow forever:
        # start it again from empty instead. Other writers append (O_APPEND), so they follow.
        if self.stream is not None:
            self.stream.flush()
            os.ftruncate(self.stream.fileno(), 0)


class OutputLogHandler(PrivateLogHandler):
    """Logs to the file this process's stdout and stderr point at (a detached server's log),
    and after each rotation points them at the new file, so prints and crashes rotate too."""

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(self.stream.fileno(), 1)
            os.dup2(self.stream.fileno(), 2)

    def anchor(self, folder: Path) -> None:
        """Make every file a later rotation creates live in `folder` (a path through the
        server's held folder descriptor), wherever the cache root's path then points."""
        self.acquire()  # a rotation in another thread reads the name
        try:
            self.baseFilename = os.fspath(folder / os.path.basename(self.baseFilename))
        finally:
            self.release()
