"""An MCP server that speaks stdio, wired through the factory.

The MCP SDK is imported only when the server is built, and the settings are named by import
string, as an author would to keep `status` cheap: each CLI call of this script costs the
interpreter and our own modules, not ~1 s of SDK and pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_lifecycle import MCPServerCLIFactory
from mcp_lifecycle.transports.stdio_server import stdio_handler

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer


def build() -> MCPServer[Any]:
    from mcp.server.mcpserver import MCPServer

    server: MCPServer[Any] = MCPServer("stdio-toy")

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    return server


app = MCPServerCLIFactory(
    "toy", settings="stdio_settings:StdioSettings", start_handler=stdio_handler(build)
).create_app()

if __name__ == "__main__":
    app()
