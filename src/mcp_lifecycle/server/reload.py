"""Reload inside the server: read the settings again on SIGHUP and take them up, or keep the
old ones when the new ones are invalid. Every attempt is counted for `reload`, which waits
for the count to change."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from mcp_lifecycle.errors import ConfigurationError, os_error
from mcp_lifecycle.files.snapshot import utc_now_iso
from mcp_lifecycle.handoff import HOOK_FAILED

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings

logger = logging.getLogger(__name__)

# Settings a running server cannot take up without a restart: they name its files and socket.
RESTART_ONLY = ("server_name", "cache_root", "host", "port", "http_path")


class Reloader:
    def __init__(
        self,
        read_settings: Callable[[], MCPServerSettings] | None,
        hook: Callable[[MCPServerSettings], None] | None,
    ) -> None:
        self._read_settings = read_settings
        self._hook = hook
        self.attempts = 0
        self.last_at: str | None = None
        self.last_error: str | None = None

    def reload(
        self, current: MCPServerSettings, take_up: Callable[[MCPServerSettings], None]
    ) -> None:
        """One attempt: `take_up` gets the new settings when they are valid."""
        try:
            self.last_error = self._apply(current, take_up)
        except Exception as exc:  # anything a settings class or `take_up` raises
            logger.exception("reload failed")
            self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            # Whatever happened, the attempt counts at once: `reload` waits for it.
            self.attempts += 1

    def _apply(
        self, current: MCPServerSettings, take_up: Callable[[MCPServerSettings], None]
    ) -> str | None:
        """The problem, if any: invalid settings (the old ones then stay) or a reload hook
        that failed (the new ones are applied)."""
        if self._read_settings is None:
            self.last_at = utc_now_iso()
            return None
        try:
            new = self._read_settings()
        except ConfigurationError as exc:
            logger.error("reload failed, keeping the previous settings: %s", exc.message)
            return exc.message
        except OSError as exc:  # e.g. the working directory was deleted
            error = os_error(exc)
            logger.error("reload failed, keeping the previous settings: %s", error.message)
            return error.message
        changed = [name for name in RESTART_ONLY if getattr(new, name) != getattr(current, name)]
        if changed:
            logger.warning("ignoring changed %s until the next restart", ", ".join(sorted(changed)))
            new = new.model_copy(update={name: getattr(current, name) for name in changed})
        take_up(new)
        self.last_at = utc_now_iso()
        logger.info("settings reloaded")
        if self._hook is not None:
            try:
                self._hook(new)
            except Exception as exc:
                logger.exception("the server's reload hook failed")
                return f"{HOOK_FAILED}: {type(exc).__name__}: {exc}"
        return None
