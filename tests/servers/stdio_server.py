"""An MCP server that speaks stdio, wired through the factory."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from mcp_lifecycle import MCPServerCLIFactory, MCPServerSettings
from mcp_lifecycle.transports.stdio_server import stdio_handler


def build() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("stdio-toy")

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    return server


app = MCPServerCLIFactory(
    "toy", settings=MCPServerSettings(transport="stdio"), start_handler=stdio_handler(build)
).create_app()

if __name__ == "__main__":
    app()
