"""Where a server's files live inside its cache root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_lifecycle.settings_view import LifecycleSettings

SNAPSHOT_NAME = "runtime_health.json"


@dataclass(frozen=True)
class ServerPaths:
    server_name: str
    cache_root: Path

    @classmethod
    def for_settings(cls, settings: LifecycleSettings) -> ServerPaths:
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
    def log(self) -> Path:
        return self.cache_root / f"{self.server_name}.log"
