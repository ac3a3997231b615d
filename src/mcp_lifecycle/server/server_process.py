"""One run of a server under its supervisor: spawned with a readiness pipe, watched, and
stopped the way `stop` stops a server (SIGTERM once, the stop timeout, then SIGKILL)."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from mcp_lifecycle import handoff
from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.files.snapshot import utc_now_iso
from mcp_lifecycle.handoff import Answer

logger = logging.getLogger("mcp_lifecycle.supervisor")

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Exit(NamedTuple):
    """How a run ended: its exit code, or the signal that ended it."""

    code: int | None
    signal: int | None
    uptime: float
    at: str  # when, in UTC (ISO 8601)

    @property
    def failed(self) -> bool:
        return self.code != 0

    def describe(self) -> str:
        how = f"signal {self.signal}" if self.signal is not None else f"exit code {self.code}"
        return f"{how} after {self.uptime:.1f}s"

    def as_record(self) -> dict[str, Any]:
        """As `status` shows it (`last_exit`)."""
        return {
            "code": self.code,
            "signal": self.signal,
            "at": self.at,
            "uptime_seconds": round(self.uptime, 1),
        }


class ServerProcess:
    def __init__(self, command: list[str], env: dict[str, str], stop_timeout: float) -> None:
        self._command = command
        self._env = env
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._terminated = False
        self._reaped = False
        self._pidfd: int | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, startup_timeout: float, cancelled: Callable[[], bool]) -> Answer | None:
        """Spawn the server and wait until it is ready (None: not within the timeout, or
        `cancelled()`). One that is not ready is stopped."""
        read_fd, write_fd = os.pipe()
        env = {
            **os.environ,
            **self._env,
            handoff.READY_FD_ENV: str(write_fd),
            handoff.SUPERVISOR_ENV: str(os.getpid()),
        }
        # Signals wait while the process is made: a stop in between finds it to signal, and
        # the server starts with them blocked until its handlers are in (a SIGHUP before
        # that would kill it). Its signal handler setup unblocks them.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            # From the main thread only: the server's death signal follows the thread that
            # forked it. A group of its own, so that signals reach it once, through us.
            self._proc = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                pass_fds=(write_fd,),
                env=env,
                process_group=0,
            )
        except OSError as exc:
            os.close(read_fd)
            raise LifecycleError(f"could not run {self._command[0]}: {exc}") from None
        finally:
            os.close(write_fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self._started = time.monotonic()
        with contextlib.suppress(OSError, AttributeError):  # no pidfds: Popen.wait instead
            self._pidfd = os.pidfd_open(self._proc.pid)
        try:
            answer = handoff.await_ready(read_fd, startup_timeout, cancelled)
        finally:
            os.close(read_fd)
        if answer is None or not answer.ready:
            self.stop()
        return answer

    def wait(self, timeout: float) -> Exit | None:
        """How the run ended, if it ended within `timeout` seconds."""
        proc = self._proc
        assert proc is not None
        if self._pidfd is not None:
            # Asleep until the server exits or the time is up: Popen.wait(timeout) would wake
            # twenty times a second, and a supervisor waits for days.
            select.select([self._pidfd], [], [], timeout)
            code = proc.poll()
            if code is None:
                return None
        else:
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        self._reap()
        uptime = time.monotonic() - self._started
        at = utc_now_iso()
        return Exit(None, -code, uptime, at) if code < 0 else Exit(code, None, uptime, at)

    def terminate(self, force: bool = False) -> None:
        """SIGTERM, once: the server takes a second one as "stop now", so only `force` repeats
        it. Safe in a signal handler."""
        proc = self._proc
        if proc is None or self._reaped or (self._terminated and not force):
            return
        self._terminated = True  # first: a signal handler may run between these lines
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Ask the server to stop, give it its stop timeout, then kill its whole group."""
        proc = self._proc
        if proc is None or self._reaped:
            return
        self.terminate()
        try:
            proc.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the server (PID %d) did not stop in time; killing it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._reap()

    def reload(self) -> None:
        proc = self._proc
        if proc is not None and not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGHUP)

    def rss(self) -> int | None:
        import psutil

        try:
            return int(psutil.Process(self.pid).memory_info().rss) if self.pid else None
        except psutil.Error:
            return None

    def _reap(self) -> None:
        """Kill what the server's own children left in its group, right after `wait` reaped
        the server, and never again: a group ID cannot be reused while members remain, but it
        can be once they are gone."""
        if self._proc is not None and not self._reaped:
            self._reaped = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
