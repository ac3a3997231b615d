"""A claim on the server's name that no file operation can undo: an abstract Unix socket.

Deleting the cache root deletes the lock file, and a new `start` could then lock a fresh one
while the old server still runs. A name in Linux's abstract socket namespace cannot be deleted:
the kernel frees it when its last holder closes it, and SO_PEERCRED says which process that is.

The name is predictable, so any local user can bind it first: holding it proves nothing by
itself. `state.name_claim` decides whether its holder is our server (same user, and it holds
the server's lock with a matching identity record); a holder that is not never blocks a start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

SUPPORTED = sys.platform.startswith("linux")
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
_RELEASE_WAIT_SECONDS = 2.0


def address(cache_root: Path, server_name: str) -> bytes:
    """The server's abstract address: one per user, cache root and server name.

    A 64-bit digest from zlib (hashlib would load OpenSSL, 2 ms of every `status`): names
    only need to differ between the few servers one user runs.
    """
    key = f"{os.getuid()}\0{os.path.realpath(cache_root)}\0{server_name}".encode()
    digest = f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}"
    return b"\0mcp-lifecycle/" + digest.encode()


@dataclass(frozen=True)
class Holder:
    """Who holds a name, as the kernel says (SO_PEERCRED), not as the holder says."""

    pid: int
    uid: int


class ControlSocket:
    """Held by the running server for its whole life, next to its flock."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        # The bound socket and the thread that answers on it, held together.
        self._held: tuple[socket.socket, threading.Thread] | None = None

    def claim(self) -> bool:
        """False if another live process holds the name."""
        if not SUPPORTED:
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
            target=self._answer, args=(sock,), name="mcp-lifecycle-control", daemon=True
        )
        answerer.start()
        self._held = (sock, answerer)
        return True

    @staticmethod
    def _answer(sock: socket.socket) -> None:
        # Checkers only need the connection (and its peer credentials): accept and close.
        from mcp_lifecycle.signals import keep_signals_for_the_main_thread

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


def is_bound(name: bytes) -> bool:
    """Whether anyone has bound `name`, even a process that does not listen or answer (and so
    cannot be identified): probed by binding it for an instant."""
    if not SUPPORTED:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.bind(name)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def holder(name: bytes, timeout: float = 0.5) -> Holder | None:
    """The process holding `name`, whoever it runs as; None if no one does."""
    if not SUPPORTED:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(name)
            pid, uid, _ = _PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
        except OSError:
            return None
    return Holder(pid, uid) if pid > 0 else None
