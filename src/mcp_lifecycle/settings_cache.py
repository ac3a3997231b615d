"""A cache of validated settings, so the hot commands skip pydantic-settings (~150 ms).

The key covers every input of the resolution: the settings class (and its source file's
version), the server name, flags, values given in code, every `MCP_SERVER_*` variable, the
variables that place the default cache root, and the bytes of both YAML files. Any change to
one of them is a miss, and a miss resolves in full (and so validates) before it is stored.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import zlib
from pathlib import Path
from typing import Any

from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.files import atomic_write, read_no_follow

ENV_PREFIX = "MCP_SERVER_"
# platformdirs places the default cache root from these.
_PLACEMENT_VARIABLES = ("HOME", "XDG_STATE_HOME")
_KEEP = 64
_MAX_YAML_BYTES = 1_048_576


def cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("mcp-lifecycle") / "settings"


def module_version(module: str) -> str:
    """Where a module's source is and when it last changed, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return "unknown"
    origin = spec.origin if spec is not None else None
    if not origin:
        return "unknown"
    try:
        st = os.stat(origin)
    except OSError:
        return origin
    return f"{origin}:{st.st_mtime_ns}:{st.st_size}"


def key(
    class_spec: str,
    server_name: str,
    flags: dict[str, Any],
    code_defaults: dict[str, Any],
    yaml_files: tuple[Path, ...],
) -> str:
    """Every input of the resolution, as text; an entry is used only if its key is equal."""
    module = class_spec.partition(":")[0]
    parts: dict[str, Any] = {
        "class": class_spec,
        "class_version": module_version(module),
        "library_version": module_version("mcp_lifecycle.settings"),
        "server": server_name,
        "flags": flags,
        "code": code_defaults,
        "env": sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)),
        "placement": [os.environ.get(name) for name in _PLACEMENT_VARIABLES],
        "yaml": [_file_digest(path) for path in yaml_files],
    }
    return json.dumps(parts, sort_keys=True, default=str)


def _file_digest(path: Path) -> list[str]:
    absolute = os.path.abspath(path)
    try:
        data = read_no_follow(Path(absolute), _MAX_YAML_BYTES)
    except (OSError, LifecycleError):
        # Unreadable or unsafe: never a hit, so the full resolution reports the problem.
        return [absolute, "unreadable", os.urandom(8).hex()]
    if data is None:
        return [absolute, "missing"]
    return [absolute, f"{len(data)}:{zlib.crc32(data):08x}:{zlib.adler32(data):08x}"]


def _entry(cache_key: str) -> Path:
    # The file name is a short digest; the entry holds the whole key and must match it.
    digest = f"{zlib.crc32(cache_key.encode()):08x}{zlib.adler32(cache_key.encode()):08x}"
    return cache_dir() / f"{digest}.json"


def load(cache_key: str) -> dict[str, Any] | None:
    try:
        data = read_no_follow(_entry(cache_key), _MAX_YAML_BYTES)
        entry = json.loads(data) if data else None
    except (OSError, LifecycleError, ValueError):
        return None  # a bad cache entry is a miss
    if not isinstance(entry, dict) or entry.get("key") != cache_key:
        return None
    values = entry.get("values")
    return values if isinstance(values, dict) else None


def store(cache_key: str, values: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written only costs speed."""
    directory = cache_dir()
    with contextlib.suppress(OSError, ValueError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = {"key": cache_key, "values": values}
        atomic_write(_entry(cache_key), json.dumps(entry, default=str).encode())
        _prune(directory)


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[_KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
