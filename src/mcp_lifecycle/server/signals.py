"""SignalHandler: SIGTERM/SIGINT -> on_shutdown, SIGHUP -> on_reload."""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

_Handler = Callable[[int, FrameType | None], Any] | int | None


def keep_signals_for_the_main_thread() -> None:
    """Called first in our own threads: the kernel then delivers SIGTERM, SIGINT and SIGHUP to
    the main thread, the one that runs Python's handlers. Delivered to a helper thread (as
    after a stopped process is continued), they would wait until the main thread next runs
    Python code, which a server blocked in a wait may never do."""
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))


class SignalHandler:
    """Route process signals to callbacks; `install()` must run in the main thread.

    The callbacks run in the main thread between bytecodes. `on_shutdown` may raise to unwind
    what the main thread was doing.
    """

    SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(
        self,
        on_shutdown: Callable[[], None],
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        self.on_shutdown = on_shutdown
        self.on_reload = on_reload
        self.received: list[int] = []
        self._previous: dict[int, _Handler] = {}

    def _shutdown(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        self.on_shutdown()

    def _reload(self, on_reload: Callable[[], None], signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        on_reload()

    def install(self) -> SignalHandler:
        for signum in self.SHUTDOWN_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._shutdown)
        if self.on_reload is not None:
            reload = functools.partial(self._reload, self.on_reload)
            self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
        # A process started with these blocked (the server behind a PID 1 init, so that a
        # signal in its first instants waits instead of killing it) takes them from now on.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, list(self._previous))
        return self

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def __enter__(self) -> SignalHandler:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
