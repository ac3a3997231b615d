"""The demo server's MCP tools. Imported only in the server process (and by `call`)."""

from __future__ import annotations

import os
import time
from typing import Any

from mcp.server.mcpserver import MCPServer

_STARTED = time.monotonic()


def build_server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(
        "mcp-lifecycle-demo", instructions="A small demo server managed by mcp-lifecycle."
    )

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool()
    def word_count(text: str) -> int:
        """Count the words in a text."""
        return len(text.split())

    @server.tool()
    def server_info() -> dict[str, Any]:
        """The serving process: its PID and how long it has been up."""
        return {"pid": os.getpid(), "uptime_seconds": round(time.monotonic() - _STARTED, 3)}

    return server
