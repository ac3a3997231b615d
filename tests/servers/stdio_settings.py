"""The stdio test server's settings, in a module of their own: the server's CLI names them by
import string, so a plain `status` loads neither pydantic nor this module."""

from __future__ import annotations

from typing import Literal

from mcp_lifecycle import MCPServerSettings


class StdioSettings(MCPServerSettings):
    transport: Literal["http", "stdio"] | None = "stdio"
