"""The ports of bridged stdio servers that declare none: a free one per name, kept, so the URL a
client was given stays the URL the server answers at."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from mcp_lifecycle.errors import ServerFailed, StartTimeout
from mcp_lifecycle.files.paths import state_root
from mcp_lifecycle.files.private import (
    atomic_write,
    ensure_cache_root,
    flock_exclusive,
    open_private_append,
    read_no_follow,
)
from mcp_lifecycle.transports import ports

_FILE = "fleet-ports.json"
_MAX_BYTES = 1 << 20


def kept_ports_path() -> Path:
    return state_root() / _FILE


def kept_port(name: str) -> int | None:
    """The port kept for `name`, without choosing one."""
    return _read(kept_ports_path()).get(name)


def assign_ports(names: list[str], running: set[str], declared: set[int]) -> dict[str, int]:
    """A port for each of `names`: the one kept for it, else a new free one (never one of the
    `declared` ports of the fleet), which is then kept.

    A kept port that someone else holds now is refused, not silently replaced: clients were
    given that URL, and would send the server's token to whoever listens there.
    """
    path = kept_ports_path()
    ensure_cache_root(path.parent)  # ours alone: nobody else may choose our ports
    with _locked(path):
        kept = _read(path)
        changed = False
        for name in names:
            port = kept.get(name)
            if port is None:
                kept[name] = _free_port(avoid=set(kept.values()) | declared)
                changed = True
            elif name not in running and ports.taken("127.0.0.1", port):
                _refuse_taken(name, port)
        if changed:
            atomic_write(path, json.dumps(kept, indent=1, sort_keys=True).encode())
    return {name: kept[name] for name in names}


def _refuse_taken(name: str, port: int) -> None:
    raise ServerFailed(
        f"port {port}, kept for {name} (its clients were given that URL), is taken by "
        f"{ports.describe(ports.listener(port))}",
        hint="stop what holds it; to move the server instead, give it `port:` in the fleet "
        "file, and hand its clients the new `client-config`",
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = open_private_append(path.with_name(f"{path.name}.lock"))
    try:
        if not flock_exclusive(fd, 10):
            raise StartTimeout(f"another command holds {path} (waited 10 s)")
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, int]:
    try:
        data = read_no_follow(path, _MAX_BYTES)
    except OSError:
        return {}
    try:
        values = json.loads(data or b"{}")
    except ValueError:
        return {}  # a broken file costs a new port, never an error
    if not isinstance(values, dict):
        return {}
    return {
        str(name): port
        for name, port in values.items()
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
    }


def _free_port(avoid: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port
