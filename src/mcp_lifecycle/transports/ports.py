"""Who listens on a TCP port."""

from __future__ import annotations

import psutil


def listener(port: int) -> int | None:
    """The PID listening on `port`, if it can be seen (another user's may not be)."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def describe(pid: int | None) -> str:
    if pid is None:
        return "another process"
    try:
        return f"PID {pid} ({psutil.Process(pid).name()})"
    except psutil.Error:
        return f"PID {pid}"
