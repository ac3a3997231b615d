"""As PID 1 of a container: a minimal init in front of the server, as tini and `docker --init`.

PID 1 inherits every orphan of the container and must reap them, but a server that reaped
with `waitpid(-1)` would also take the exit statuses its own tools wait for
(`subprocess.run` would see 0 for a command that failed). So the process splits in two: the
parent stays PID 1 and only reaps, forwards signals and ends with the server's status; the
child is the server, whose children are its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType
from typing import NoReturn

# What `docker stop`, `kubectl delete` and people send to PID 1, passed on to the server.
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def split_if_pid_1() -> None:
    """When this process is PID 1, fork: the child returns (and runs the server), the parent
    never does (it is the init until the server ends, then exits with its status)."""
    if os.getpid() != 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        _take_the_terminal()
        return
    _serve_as_init(child)


def _take_the_terminal() -> None:
    """The server leads a process group of its own, the terminal's foreground one if there is
    a terminal: Ctrl-C then reaches it once, not also through the init."""
    os.setpgid(0, 0)
    if os.isatty(0):
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            os.tcsetpgrp(0, os.getpgrp())
        signal.signal(signal.SIGTTOU, previous)


def _serve_as_init(server: int) -> NoReturn:
    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    code = 1
    while True:
        try:
            pid, status = os.waitpid(-1, 0)  # every orphan of the container comes here
        except ChildProcessError:
            break
        if pid == server:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells
            break
    os._exit(code)
