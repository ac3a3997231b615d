"""Our server's process, as the control side acts on it: proven before any signal, signalled
through a pidfd, waited for with its process group.

Nothing here signals a process before proving it is our server: its lock is held and the
lock's record names it with its own start time (`inspect`, `identity`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
from typing import TYPE_CHECKING

from mcp_lifecycle.control.inspect import Condition, ServerState, inspect_server
from mcp_lifecycle.errors import LifecycleError, NotRunning, StalePid
from mcp_lifecycle.files.identity import (
    PROCESS_GONE,
    ProcessIdentity,
    is_process_alive,
    mismatch_reason,
)
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.pidfile import remove_pid_file
from mcp_lifecycle.files.private import read_no_follow

if TYPE_CHECKING:
    import psutil

# How long a signalled process group gets before the next step.
KILL_GRACE_SECONDS = 2.0


class VerifiedProcess:
    """Our server's process, proven by identity, signalled through a pidfd where the kernel
    has them: once the pidfd is open and the identity checks out, no signal through it can
    reach a recycled PID. Without pidfds (old kernels, some seccomp profiles) the identity is
    checked again right before each signal."""

    def __init__(self, pid: int, identity: ProcessIdentity | None) -> None:
        self.pid = pid
        self.identity = identity
        self.pidfd: int | None = None
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise NotRunning(f"PID {pid} just exited") from None
        except (OSError, AttributeError):
            self.pidfd = None
        self._verify()

    def _verify(self) -> None:
        reason = mismatch_reason(self.pid, self.identity)
        if reason is not None:
            self._refuse(reason)

    def _refuse(self, reason: str) -> None:
        self.close()
        raise StalePid(f"refusing to signal PID {self.pid}: {reason}")

    def send(self, signum: int) -> None:
        """Signal it; ProcessLookupError once it has exited, with or without a pidfd."""
        if self.pidfd is not None:
            signal.pidfd_send_signal(self.pidfd, signum)
            return
        reason = mismatch_reason(self.pid, self.identity)
        if reason == PROCESS_GONE:
            # Our server, verified when this began, has exited since (a SIGKILL to its group
            # takes it too): what a pidfd would say. "Refusing" is for a stranger.
            raise ProcessLookupError(errno.ESRCH, f"PID {self.pid} has exited")
        if reason is not None:
            self._refuse(reason)
        os.kill(self.pid, signum)

    def wait(self, deadline: float) -> bool:
        """True once the process has exited (a zombie counts: it will never run again)."""
        if self.pidfd is not None:
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))
        while is_process_alive(self.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def leads_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except ProcessLookupError:
        return False


def _group_members(pgid: int, session: int | None = None) -> list[psutil.Process]:
    import psutil  # not for `stop`'s decision: only once there is a group to wait for

    members = []
    for proc in psutil.process_iter():
        try:
            if (
                os.getpgid(proc.pid) == pgid
                and (session is None or os.getsid(proc.pid) == session)
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def wait_group(pgid: int, deadline: float) -> bool:
    """Wait for the rest of the server's process group (its children) to exit."""
    while _group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def kill_group_leftovers(pgid: int, session: int | None = None) -> None:
    """SIGKILL what is left of a process group of ours (in `session`, if given). A group ID
    cannot be reused while the group has members, so only a group with members is signalled."""
    if not _group_members(pgid, session):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while _group_members(pgid, session) and time.monotonic() < deadline:
        time.sleep(0.02)


def end_descendants(pid: int, grace: float = 0.0) -> None:
    """End every process under `pid`, a process of ours that still lives (so what is under it
    is ours too): SIGTERM and `grace` seconds to exit, then SIGKILL (at once, without grace).
    What a server started in a session of its own (as the MCP SDK starts a stdio server) is
    not in its group, and would outlive a signal to the group."""
    import psutil

    try:
        found = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    if grace > 0:
        for child in found:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        _, found = psutil.wait_procs(found, timeout=grace)
    for child in found:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(found, timeout=KILL_GRACE_SECONDS)


def require_running(paths: ServerPaths, *, remove_stale: bool) -> ServerState:
    """The server's state if it provably runs; NotRunning or StalePid otherwise."""
    state = inspect_server(paths)
    if state.condition is Condition.NOT_RUNNING:
        raise NotRunning(f"{paths.server_name} is not running")
    if state.condition is Condition.STALE:
        if remove_stale:
            remove_stale_pid_file(paths, state)
            raise StalePid(
                f"stale PID file removed: {state.reason}",
                hint="nothing was signalled; `start` it again",
            )
        raise StalePid(f"stale PID file: {state.reason}", hint="nothing was signalled")
    if state.condition is Condition.UNVERIFIED or state.pid is None:
        raise StalePid(
            f"refusing to signal anything: {state.reason}",
            hint="find the process holding the lock with `fuser` or `lsof`",
        )
    return state


def remove_stale_pid_file(paths: ServerPaths, state: ServerState) -> None:
    if state.pid_file_pid is not None:
        remove_pid_file(paths.pid, state.pid_file_pid)
        return
    # A corrupt file: remove it only if it still holds what was judged, so a PID file that a
    # racing server has just written survives.
    with contextlib.suppress(OSError, LifecycleError):
        if read_no_follow(paths.pid, 4096) == state.pid_file_bytes:
            os.unlink(paths.pid)
