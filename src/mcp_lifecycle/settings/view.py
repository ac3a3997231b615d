"""What the lifecycle commands read from settings, without pydantic.

`status`, `stop`, `health` and `logs` run in scripts and probes many times a minute; they take
their settings from the validated-settings cache (`settings_cache`) as a `SettingsView`. The
full `MCPServerSettings` model has the same attributes, so domain code accepts either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


def default_cache_root(server_name: str) -> Path:
    """Where a server lives unless its settings say otherwise: the user's state folder."""
    from platformdirs import user_state_path

    return user_state_path("mcp-lifecycle") / server_name


class LifecycleSettings(Protocol):
    @property
    def server_name(self) -> str: ...
    @property
    def health_ttl_seconds(self) -> float: ...
    @property
    def startup_timeout_seconds(self) -> float: ...
    @property
    def stop_timeout_seconds(self) -> float: ...
    @property
    def probe_timeout_seconds(self) -> float: ...
    @property
    def stale_pid_action(self) -> str: ...
    @property
    def transport(self) -> str | None: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def log_max_bytes(self) -> int: ...
    @property
    def log_backup_count(self) -> int: ...
    @property
    def resolved_cache_root(self) -> Path: ...
    @property
    def heartbeat_interval(self) -> float: ...
    @property
    def url(self) -> str | None: ...


class SettingsView:
    """Validated settings read back from the cache: the lifecycle fields only (use
    `factory.load_settings()` for a server's own fields)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def resolved_cache_root(self) -> Path:
        return Path(self._values["resolved_cache_root"])
