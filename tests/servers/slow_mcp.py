"""An MCP server with a slow tool, to show that stop lets a call in flight finish."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mcp_lifecycle import MCPServerCLIFactory
from mcp_lifecycle.transports.http_server import streamable_http_handler

if TYPE_CHECKING:  # the SDK is imported when the server is built, not for every CLI call
    from mcp.server.mcpserver import MCPServer


def build() -> MCPServer[Any]:
    from mcp.server.mcpserver import MCPServer

    server: MCPServer[Any] = MCPServer("slow")

    @server.tool()
    async def slow_echo(text: str, seconds: float) -> str:
        """Answer after a while."""
        import os
        from pathlib import Path

        import anyio

        mark = os.environ.get("SLOW_MARK")
        if mark:
            Path(mark).write_text(text)  # the call has reached the tool
        await anyio.sleep(seconds)
        return f"{text} after {seconds}s"

    @server.tool()
    async def block(seconds: float, until: str = "", started: str = "") -> str:
        """A mistake authors make: a sync sleep in an async tool blocks the event loop (here
        for `seconds`, or until the file `until` exists; the file `started` says it began)."""
        from pathlib import Path

        if started:
            Path(started).touch()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and Path(until).exists()):
            time.sleep(0.05)
        return "unblocked"

    @server.tool()
    def now() -> float:
        """The server's clock."""
        return time.time()

    return server


app = MCPServerCLIFactory("toy", start_handler=streamable_http_handler(build)).create_app()

if __name__ == "__main__":
    app()
