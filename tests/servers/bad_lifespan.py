"""An MCP server whose application fails at start-up (its lifespan raises)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcp_lifecycle import MCPServerCLIFactory
from mcp_lifecycle.transports.http_server import streamable_http_handler

if TYPE_CHECKING:  # the SDK is imported when the server is built, not for every CLI call
    from mcp.server.mcpserver import MCPServer


@asynccontextmanager
async def lifespan(server: MCPServer[Any]) -> AsyncIterator[None]:
    raise RuntimeError("database unreachable")
    yield  # pragma: no cover


def build() -> MCPServer[Any]:
    from mcp.server.mcpserver import MCPServer

    return MCPServer("bad-lifespan", lifespan=lifespan)


app = MCPServerCLIFactory("toy", start_handler=streamable_http_handler(build)).create_app()

if __name__ == "__main__":
    app()
