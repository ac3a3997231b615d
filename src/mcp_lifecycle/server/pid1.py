"""As PID 1 of a container: a minimal init in front of the server, as tini and `docker --init`.

PID 1 inherits every orphan of the container and must reap them, but a server that reaped
with `waitpid(-1)` would also take the exit statuses its own tools wait for
(`subprocess.run` would see 0 for a command that failed). So the process splits in two: this
process stays PID 1 and only reaps, forwards signals and ends with the server's status; the
server runs as its child, in a fresh interpreter (no state or threads carried over), and its
children are its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType
from typing import NoReturn

# What `docker stop`, `kubectl delete` and people send to PID 1, and the server handles.
# (PID 1 never got the others: the kernel drops a signal PID 1 has no handler for.)
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def split_if_pid_1(command: list[str]) -> None:
    """When this process is PID 1, run `command` (this same CLI, in the foreground) as a child
    and never return: stay its init until it ends, then exit with its status."""
    if os.getpid() != 1:
        return
    # Blocked from now, and in the child until its handlers are in place: a signal that comes
    # early waits instead of being dropped (here) or killing the server before it can clean up.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    sys.stdout.flush()
    sys.stderr.flush()
    server = os.posix_spawn(
        command[0],
        command,
        dict(os.environ),
        setpgroup=0,  # a group of its own: Ctrl-C on a terminal reaches it once
        setsigmask=FORWARDED,
        setsigdef=(signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU),
    )
    _give_the_terminal(server)
    _serve_as_init(server)


def _give_the_terminal(server: int) -> None:
    if os.isatty(0):
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            os.tcsetpgrp(0, server)
        signal.signal(signal.SIGTTOU, previous)


def _serve_as_init(server: int) -> NoReturn:
    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signum)
            if signum != signal.SIGHUP:
                os.kill(server, signal.SIGCONT)  # a server stopped by Ctrl-Z must still end

    for signum in FORWARDED:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
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
