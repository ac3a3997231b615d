"""Layered settings: the model, its sources (flags, variables, YAML) and the fast cache.

`MCPServerSettings` is also importable from here; it is loaded on first use, so that the fast
path (`mcp_lifecycle.settings.cache`) does not pay for pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings

__all__ = ["MCPServerSettings"]


def __getattr__(name: str) -> Any:
    if name == "MCPServerSettings":
        from mcp_lifecycle.settings.model import MCPServerSettings

        return MCPServerSettings
    raise AttributeError(f"module 'mcp_lifecycle.settings' has no attribute {name!r}")
