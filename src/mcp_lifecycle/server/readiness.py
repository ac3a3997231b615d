"""notify_ready: how server code says "I accept work now", to `start` and to systemd."""

from __future__ import annotations

import os
import socket
from typing import Protocol


class _Runtime(Protocol):
    def mark_ready(self) -> None: ...


# The one module global of the server side: the runtime of this process, while it runs.
# `notify_ready()` is public and called from anywhere in server code, so it has to be found.
# No lock: binding a name is atomic, and a lock held at a fork would hang the child.
_current: _Runtime | None = None


def set_current(runtime: _Runtime | None) -> None:
    """Installed by the runtime around the start handler."""
    global _current  # noqa: PLW0603
    _current = runtime


def current() -> _Runtime | None:
    return _current


def notify_ready() -> None:
    """Mark the server READY: `start` returns, the snapshot says ready, systemd gets READY=1.

    Safe to call more than once and from any thread.
    """
    runtime = current()
    if runtime is not None:
        runtime.mark_ready()
    else:
        sd_notify("READY=1")


def sd_notify(message: str) -> bool:
    """Send one datagram to systemd's NOTIFY_SOCKET; False when there is none or it fails."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True
