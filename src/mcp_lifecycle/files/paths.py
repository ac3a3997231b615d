"""Where a server's files live inside its cache root."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple, Protocol

SNAPSHOT_NAME = "runtime_health.json"

# A server's name becomes file names (`<name>.start.lock`) and a folder of the state directory:
# it must never be `.`, `..`, a path, an option, or longer than a file name may be.
NAME_MAX_LENGTH = 63
NAME_RULE = (
    f"1 to {NAME_MAX_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit"
)
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX_LENGTH - 1}}}")


# What platformdirs reads to place the state folder and the settings cache (on Linux; it reads
# nothing else unless HOME is missing or relative).
PLACEMENT_VARIABLES = ("HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")
# platformdirs' state folder, by the placement it was found for: the settings cache records it,
# so a hot command that hits the cache needs no platformdirs (~4 ms with tempfile).
_state_roots: dict[tuple[str | None, ...], Path] = {}


def placement() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in PLACEMENT_VARIABLES)


def state_root() -> Path:
    """The user's state folder for mcp-lifecycle: servers with the default cache root live
    there (one folder each), and so does the registry of running servers."""
    known = _state_roots.get(placement())
    if known is not None:
        return known
    from platformdirs import user_state_path

    return user_state_path("mcp-lifecycle")


def remember_state_root(root: Path) -> None:
    """Take `root` as platformdirs' state folder for this process's placement (the settings
    cache found it under a key that covers every placement variable)."""
    _state_roots[placement()] = root


def default_cache_root(server_name: str) -> Path:
    """Where a server lives unless its settings say otherwise."""
    return state_root() / server_name


def server_name_problem(name: str) -> str | None:
    """Why `name` cannot name a server; None when it can."""
    if _NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 40 else f"{name[:40]}... ({len(name)} characters)"
    return f"server name {shown!r} is not a safe file name: use {NAME_RULE}"


class _Located(Protocol):
    """What settings of any shape say about where a server lives."""

    @property
    def server_name(self) -> str: ...
    @property
    def resolved_cache_root(self) -> Path: ...


class ServerPaths(NamedTuple):
    server_name: str
    cache_root: Path

    @classmethod
    def for_settings(cls, settings: _Located) -> ServerPaths:
        return cls(settings.server_name, settings.resolved_cache_root)

    @property
    def pid(self) -> Path:
        return self.cache_root / f"{self.server_name}.pid"

    @property
    def lock(self) -> Path:
        """Held by the running server for its whole life; never deleted."""
        return self.cache_root / f"{self.server_name}.lock"

    @property
    def start_lock(self) -> Path:
        """Serialises concurrent `start` commands; never deleted."""
        return self.cache_root / f"{self.server_name}.start.lock"

    @property
    def snapshot(self) -> Path:
        return self.cache_root / SNAPSHOT_NAME

    @property
    def token(self) -> Path:
        """The bearer token HTTP clients must present; 0600, kept across restarts."""
        return self.cache_root / f"{self.server_name}.token"

    @property
    def log(self) -> Path:
        return self.cache_root / f"{self.server_name}.log"

    @property
    def supervision(self) -> Path:
        """What the supervisor of a server with a restart policy records for `status`."""
        return self.cache_root / f"{self.server_name}.supervisor.json"
