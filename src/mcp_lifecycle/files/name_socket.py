"""A claim on the server's name that no file operation can undo: an abstract Unix socket.

Deleting the cache root deletes the lock file, and a new `start` could then lock a fresh one
while the old server still runs. A name in Linux's abstract socket namespace cannot be deleted:
the kernel frees it when its last holder closes it, and SO_PEERCRED says which process that is.

The name is predictable, so any local user can bind it first: holding it proves nothing by
itself. `name_claim` decides whether its holder is our server (same user, and it holds
the server's lock with a matching identity record); a holder that is not never blocks a start.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mcp_lifecycle.files import kernel
from mcp_lifecycle.files.identity import ProcessIdentity, mismatch_reason
from mcp_lifecycle.files.pidfile import record_held_by

if TYPE_CHECKING:
    from mcp_lifecycle.files.paths import ServerPaths

SUPPORTED = kernel.ABSTRACT_SOCKETS
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


class Holder(NamedTuple):
    """Who holds a name, as the kernel says (SO_PEERCRED), not as the holder says."""

    pid: int
    uid: int


def is_bound(name: bytes) -> bool:
    """Whether anyone has bound `name`, even a process that does not listen or answer (and so
    cannot be identified): probed by binding it for an instant."""
    if not SUPPORTED:
        return False
    import socket  # not at the top: `status` of a running server never needs it

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
    import socket

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


class NameClaim(NamedTuple):
    """Who holds the server's abstract name, and whether that is provably our server."""

    holder: Holder
    identity: ProcessIdentity | None  # set only when the holder is proven to be the server

    @property
    def proven(self) -> bool:
        return self.identity is not None

    def describe(self) -> str:
        who = f"PID {self.holder.pid} (uid {self.holder.uid})"
        if self.proven:
            return f"{who}, the server"
        if self.holder.uid != os.getuid():
            return f"{who}, another user's process"
        return f"{who}, which holds no lock of this server"


def name_claim(paths: ServerPaths) -> NameClaim | None:
    """The holder of the server's abstract name, if any.

    It is proven to be our server only as any server is: it runs as us and holds the server's
    lock (a file called `<server>.lock`, even one deleted or moved since), whose record names it
    with its own start time. Holding the name alone proves nothing: anyone can bind it.
    """
    found = holder(address(paths.cache_root, paths.server_name))
    if found is None:
        return None
    identity = None
    if found.uid == os.getuid():
        record = record_held_by(found.pid, paths.lock.name)
        if record is not None and mismatch_reason(found.pid, record) is None:
            identity = record
    return NameClaim(found, identity)
