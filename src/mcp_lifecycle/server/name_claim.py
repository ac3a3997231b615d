"""Holding a server's name: the abstract socket a running server binds for as long as it runs.

Who holds a name, and whether that is provably our server, is read in
`mcp_lifecycle.files.name_socket`; binding it first proves nothing by itself.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading

from mcp_lifecycle.files import name_socket
from mcp_lifecycle.server.signals import keep_signals_for_the_main_thread

_RELEASE_WAIT_SECONDS = 2.0


class NameSocket:
    """Held by the running server for its whole life, next to its flock."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        # The bound socket and the thread that answers on it, held together.
        self._held: tuple[socket.socket, threading.Thread] | None = None

    def claim(self) -> bool:
        """False if another live process holds the name."""
        if not name_socket.SUPPORTED:
            return True
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self.name)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        sock.listen(16)
        answerer = threading.Thread(
            target=self._answer, args=(sock,), name="mcp-lifecycle-name", daemon=True
        )
        answerer.start()
        self._held = (sock, answerer)
        return True

    @staticmethod
    def _answer(sock: socket.socket) -> None:
        # Checkers only need the connection (and its peer credentials): accept and close.
        keep_signals_for_the_main_thread()
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def release(self) -> None:
        """Give the name back; when this returns, the name is free."""
        held, self._held = self._held, None
        if held is None:
            return
        sock, answerer = held
        # The kernel keeps the name while a thread sits in accept(): shutdown wakes it, and
        # the name is free only once it has returned.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        answerer.join(timeout=_RELEASE_WAIT_SECONDS)
        sock.close()

    def forget(self) -> None:
        """In a forked child: close our copy, so the name dies with the server."""
        # The answering thread is the parent's: it does not run here.
        held, self._held = self._held, None
        if held is not None:
            held[0].close()
