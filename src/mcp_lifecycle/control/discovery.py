"""Finding the user's servers: the running one of a name (through the registry of running
servers), and every server with how it is doing.

The registry lets `status`, `stop`, `health`, `logs` and `reload` find a running server by name
from any working directory, with whatever cache root it was given, even after its settings
files broke. An entry only says where to look: whether a server runs there is proven, as
always, by its lock and identity record.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import NamedTuple

from mcp_lifecycle.control.inspect import Condition
from mcp_lifecycle.control.status import Status, observe_quietly
from mcp_lifecycle.errors import ConfigurationError, LifecycleError
from mcp_lifecycle.files.paths import (
    ServerPaths,
    default_cache_root,
    server_name_problem,
    state_root,
)
from mcp_lifecycle.files.pidfile import lock_is_held
from mcp_lifecycle.files.registry import Registration, registrations
from mcp_lifecycle.files.snapshot import never_ready
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.settings.flags import Flags, invocation_flags
from mcp_lifecycle.settings.loader import SettingsLoader
from mcp_lifecycle.settings.sources import env_prefixes, env_variable


def find_running(server_name: str, cache_root: Path | None = None) -> Registration | None:
    """The one registered server of that name whose lock is held now (at `cache_root`, if
    given); ConfigurationError if several are."""
    alive = []
    for entry in registrations(server_name):
        if cache_root is not None and os.path.realpath(entry.cache_root) != os.path.realpath(
            cache_root
        ):
            continue
        with contextlib.suppress(OSError, LifecycleError):
            if lock_is_held(entry.paths.lock):
                alive.append(entry)
    if len(alive) > 1:
        roots = ", ".join(str(entry.cache_root) for entry in alive)
        raise ConfigurationError(
            f"several servers named {server_name} run (cache roots {roots})",
            hint="say which with --cache-root",
        )
    return alive[0] if alive else None


class Located(NamedTuple):
    """The settings of the server a command acts on, and what the user should hear about how
    it was found (None: by its settings, as usual)."""

    fields: LifecycleFields
    note: str | None = None


def locate(loader: SettingsLoader, flags: Flags | None = None) -> Located:
    """The server `status`, `stop`, `health`, `logs` and `reload` act on: the one these
    settings name, unless the registry knows better. A server that runs with another cache root
    than these settings name, or whose settings files broke since it started, is found by its
    name."""
    flags = flags if flags is not None else invocation_flags()
    name = loader.server_name
    variable = env_variable("cache_root", env_prefixes(loader.env_prefix))
    pinned = flags.values.get("cache_root") or (os.environ[variable] if variable else None)
    try:
        fields = loader.fields(flags)
    except ConfigurationError as exc:
        found = _running_fields(name, Path(pinned) if pinned else None)
        if found is None:
            raise
        return Located(
            found[1],
            f"Warning: {exc.message}\n  Acting on the running {name} (PID {found[0].pid}) "
            "with the settings it started with; fix the settings before its next start.",
        )
    # Only a server on the default cache root may be looked for elsewhere: one whose settings
    # name a cache root (any layer) means that one, even when nothing runs there.
    if pinned or fields.resolved_cache_root != default_cache_root(name):
        return Located(fields)
    try:
        if lock_is_held(ServerPaths.for_settings(fields).lock):
            return Located(fields)
    except LifecycleError:
        return Located(fields)  # the command itself will say what is wrong there
    found = _running_fields(name)
    if found is None:
        return Located(fields)
    return Located(
        found[1],
        f"Note: {name} runs with the cache root {found[0].cache_root} (found by its name); "
        "acting on it.",
    )


def _running_fields(
    server_name: str, cache_root: Path | None = None
) -> tuple[Registration, LifecycleFields] | None:
    found = find_running(server_name, cache_root)
    fields = None if found is None else LifecycleFields.from_json(found.settings, server_name)
    return None if found is None or fields is None else (found, fields)


def list_servers(root: Path | None = None) -> list[Status]:
    """The servers that registered (running, or ended without a clean stop), judged with the
    settings they run with, and those in `root`'s folders that ever started (they hold a lock
    file), judged with the default timings; each once."""
    found: dict[str, LifecycleFields] = {}
    if root is None:
        for entry in registrations():
            fields = LifecycleFields.from_json(entry.settings, entry.server)
            fields = fields or LifecycleFields(entry.server, entry.cache_root)
            found.setdefault(os.path.realpath(entry.cache_root), fields)
    root = root or state_root()
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        folders = []
    scanned: set[str] = set()
    for folder in folders:
        if server_name_problem(folder.name) is None and (folder / f"{folder.name}.lock").exists():
            key = os.path.realpath(folder)
            if key not in found:
                scanned.add(key)
                found[key] = LifecycleFields(folder.name, folder)
    listed = [
        status
        for key, fields in found.items()
        if (status := observe_quietly(fields)).condition != Condition.NOT_RUNNING.value
        or key not in scanned
        or not never_ready(ServerPaths.for_settings(fields).snapshot)
    ]
    return sorted(listed, key=lambda status: (status.server, status.cache_root))
