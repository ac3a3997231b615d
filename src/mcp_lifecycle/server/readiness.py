"""notify_ready: how server code says "I accept work now", to `start` and to systemd."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

_lock = threading.Lock()
_ready_callback: Callable[[], None] | None = None


def set_ready_callback(callback: Callable[[], None] | None) -> None:
    """Installed by the runtime around the start handler."""
    global _ready_callback  # noqa: PLW0603
    with _lock:
        _ready_callback = callback


def notify_ready() -> None:
    """Mark the server READY: `start` returns, the snapshot says ready, systemd gets READY=1.

    Safe to call more than once and from any thread.
    """
    with _lock:
        callback = _ready_callback
    if callback is not None:
        callback()
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
