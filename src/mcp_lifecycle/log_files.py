"""The detached server's log file: rotated by size, with stdout and stderr following it."""

from __future__ import annotations

import logging.handlers
import os
import sys


class OutputLogHandler(logging.handlers.RotatingFileHandler):
    """Logs to the file this process's stdout and stderr point at (a detached server's log),
    and after each rotation points them at the new file, so prints and crashes rotate too."""

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(self.stream.fileno(), 1)
            os.dup2(self.stream.fileno(), 2)
