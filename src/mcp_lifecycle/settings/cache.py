"""A cache of validated settings, so the hot commands skip pydantic-settings (~150 ms).

An entry is used only when nothing the resolution read has changed:

- the key covers the settings class's name, the server name, flags, values given in code,
  every `MCP_SERVER_*` variable, the variables that place the default cache root, and the
  whole bytes of both YAML files;
- the entry lists the source files the settings class is made of (its whole MRO, a script
  run as `__main__` included), and each must still be unchanged on disk;
- classes that read anything else (another env prefix, aliases, .env or secret files, custom
  sources) are never cached.

A miss resolves in full, and so validates, before it is stored. The folder must be the user's
own, private and no symlink; otherwise nothing is cached or read from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.files.paths import placement, remember_state_root, state_root
from mcp_lifecycle.files.private import atomic_write, digest, read_no_follow
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.settings.sources import ENV_PREFIX

# Entries kept: one per server and set of flags. A fleet of a hundred servers reads a hundred
# in turn; with room for fewer, each would be evicted before its next use (64 did that).
_KEEP = 1024
_PRUNE_AT = _KEEP + 128  # pruning lists the folder: not at every store
_MAX_FILE_BYTES = 1_048_576
_ENTRY_NAME = re.compile(r"^[0-9a-f]{16}\.json$")


def cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("mcp-lifecycle") / "settings"


def _likely_cache_dir() -> Path | None:
    """Where `cache_dir()` is in the usual case, found without importing platformdirs: on
    Linux, under $XDG_CACHE_HOME or else ~/.cache. Only where to look first: an entry found
    there was stored under this very key, which holds every variable platformdirs reads, so it
    was stored where platformdirs puts the cache for this environment. Anywhere else, and
    after a miss, platformdirs is asked."""
    if not sys.platform.startswith("linux"):
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if base and not os.path.isabs(base):
        return None  # platformdirs versions differ on a relative one: theirs to decide
    if not base:
        home = os.environ.get("HOME", "")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base, "mcp-lifecycle", "settings")


def _private(directory: Path) -> bool:
    try:
        st = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def key(
    class_spec: str,
    server_name: str,
    flags: dict[str, Any],
    code_defaults: dict[str, Any],
    yaml_files: tuple[Path, ...],
    prefixes: tuple[str, ...] = (ENV_PREFIX,),
) -> str | None:
    """Every outside input of the resolution, as text; None when one cannot be keyed."""
    files = [_file_digest(path) for path in yaml_files]
    if any(entry is None for entry in files):
        return None
    parts: dict[str, Any] = {
        "class": class_spec,
        "server": server_name,
        "flags": flags,
        "code": code_defaults,
        "env": sorted(
            (k, v) for k, v in os.environ.items() if k.upper().startswith(tuple(prefixes))
        ),
        "prefixes": prefixes,
        "placement": list(placement()),
        "yaml": files,
    }
    return json.dumps(parts, sort_keys=True, default=str)


def _file_digest(path: Path) -> list[str] | None:
    absolute = os.path.abspath(path)
    try:
        data = read_no_follow(Path(absolute), _MAX_FILE_BYTES + 1)
    except (OSError, LifecycleError):
        return None  # unreadable or unsafe: the full resolution reports it
    if data is None:
        return [absolute, "missing"]
    if len(data) > _MAX_FILE_BYTES:
        return None
    return [absolute, f"{len(data)}:{digest(data)}"]


def cacheable(settings_cls: type[Any]) -> bool:
    """Whether the class reads nothing but what the key covers."""
    from mcp_lifecycle.settings.model import MCPServerSettings

    config = settings_cls.model_config
    if (
        config.get("env_prefix") != ENV_PREFIX
        or config.get("env_file")
        or config.get("secrets_dir")
        or getattr(settings_cls.settings_customise_sources, "__func__", None)
        is not getattr(MCPServerSettings.settings_customise_sources, "__func__", None)
    ):
        return False
    return all(
        field.alias is None and field.validation_alias is None
        for field in settings_cls.model_fields.values()
    )


def class_files(settings_cls: type[Any]) -> list[list[Any]] | None:
    """The source files the class is made of, with their size and change time."""
    found: list[list[Any]] = []
    for cls in settings_cls.__mro__:
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        if cls.__module__ in ("builtins", "abc", "typing"):
            continue
        if not path:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        entry = [os.path.abspath(path), st.st_size, st.st_mtime_ns]
        if entry not in found:
            found.append(entry)
    return found


def _unchanged(files: object) -> bool:
    if not isinstance(files, list):
        return False
    for entry in files:
        if not (isinstance(entry, list) and len(entry) == 3):
            return False
        path, size, mtime = entry
        try:
            st = os.stat(path)
        except (OSError, TypeError):
            return False
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            return False
    return True


def _entry_path(directory: Path, cache_key: str) -> Path:
    return directory / f"{digest(cache_key.encode())}.json"


def load(cache_key: str | None, server_name: str) -> LifecycleFields | None:
    if cache_key is None:
        return None
    likely = _likely_cache_dir()
    entry = _entry(likely, cache_key) if likely is not None else None
    if entry is None:
        try:
            directory = cache_dir()
        except RuntimeError:  # platformdirs finds no home folder: no cache
            return None
        entry = _entry(directory, cache_key) if directory != likely else None
    if entry is None:
        return None
    fields = LifecycleFields.from_json(entry.get("values"), server_name)
    root = entry.get("state_root")
    if fields is not None and isinstance(root, str) and os.path.isabs(root):
        remember_state_root(Path(root))
    return fields


def _entry(directory: Path, cache_key: str) -> dict[str, Any] | None:
    """The entry stored under `cache_key` in `directory`, if it is whole and still true."""
    if not _private(directory):
        return None
    try:
        data = read_no_follow(_entry_path(directory, cache_key), _MAX_FILE_BYTES)
        entry = json.loads(data) if data else None
    except (OSError, LifecycleError, ValueError):
        return None  # a bad entry is a miss
    if not isinstance(entry, dict) or entry.get("key") != digest(cache_key.encode()):
        return None
    if not _unchanged(entry.get("files")):
        return None
    with contextlib.suppress(OSError):
        os.utime(_entry_path(directory, cache_key))  # used: the last to be pruned
    return entry


def store(cache_key: str | None, fields: LifecycleFields, files: list[list[Any]]) -> None:
    """Best effort: a cache that cannot be written only costs speed."""
    if cache_key is None:
        return
    # RuntimeError: platformdirs finds no home folder (HOME unset or relative, no passwd entry).
    with contextlib.suppress(OSError, ValueError, LifecycleError, RuntimeError):
        directory = cache_dir()
        if not os.path.lexists(directory):
            directory.mkdir(mode=0o700, parents=True)
        if not _private(directory):
            return
        entry = {"key": digest(cache_key.encode()), "values": fields.to_json(), "files": files}
        with contextlib.suppress(RuntimeError):  # no home: the entry goes without it
            entry["state_root"] = str(state_root())
        atomic_write(_entry_path(directory, cache_key), json.dumps(entry, default=str).encode())
        _prune(directory)


def _prune(directory: Path) -> None:
    entries = [p for p in directory.iterdir() if _ENTRY_NAME.match(p.name) and p.is_file()]
    if len(entries) <= _PRUNE_AT:
        return
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[_KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
