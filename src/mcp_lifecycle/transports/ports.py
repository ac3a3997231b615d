"""Who listens on a TCP port, and whether someone does."""

from __future__ import annotations

import os

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


def taken(host: str, port: int) -> bool:
    """Does someone hold `port` on `host`? Tried as our servers bind (SO_REUSEADDR), so a port
    in TIME_WAIT counts as free; an address that is not local is not ours to judge: False."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def serves_for(holder: int, pid: int) -> bool:
    """Is the listener `holder` the process `pid`, or one in its session (a child it runs)?"""
    try:
        return holder == pid or os.getsid(holder) == os.getsid(pid)
    except OSError:
        return False
