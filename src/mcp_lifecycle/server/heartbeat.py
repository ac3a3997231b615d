"""The heartbeat: a thread of the server that vouches for it, and the loop watch it relies on.

Every interval it runs one beat (rewrite the snapshot, feed systemd's watchdog, put back
deleted files), and a reload when one was asked for. It vouches for the server only while the
server's event loop, where one is watched, keeps turning: a thread of its own says nothing
about a loop that a sync call in an async tool has blocked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mcp_lifecycle.server.signals import keep_signals_for_the_main_thread

logger = logging.getLogger(__name__)


class LoopWatch:
    """When the server's event loop last turned (monotonic), once a handler watches one."""

    def __init__(self) -> None:
        self.turned: float | None = None
        self._reported = False

    def turn(self) -> None:
        self.turned = time.monotonic()

    def stall(self) -> float | None:
        """Seconds since the watched loop last turned; None when none is watched."""
        turned = self.turned
        return None if turned is None else time.monotonic() - turned

    def ok(self, interval: float) -> bool:
        stall = self.stall()
        return stall is None or stall <= interval

    def answers(self, interval: float) -> bool:
        """Whether the loop turned within the last interval; says so in the log when that
        changes."""
        answers = self.ok(interval)
        if not answers and not self._reported:
            logger.warning(
                "the event loop has not turned for %.1fs (blocked?); the health snapshot is "
                "left to go stale until it does",
                self.stall(),
            )
        elif answers and self._reported:
            logger.info("the event loop turns again")
        self._reported = not answers
        return answers


class Heartbeat:
    def __init__(
        self,
        interval: Callable[[], float],
        beat: Callable[[], None],
        reload: Callable[[], None],
    ) -> None:
        self._interval = interval
        self._beat = beat
        self._reload = reload
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload_requested = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="mcp-lifecycle-heartbeat", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Beat now (from a signal handler too: it only sets an event)."""
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        keep_signals_for_the_main_thread()
        while not self._stop.is_set():
            self._wake.wait(timeout=self._interval())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self._reload_requested:
                    self._reload_requested = False
                    self._reload()
                self._beat()
            except Exception:
                # A heartbeat that dies makes a live server look hung: log and go on.
                logger.exception("heartbeat failed; retrying")
