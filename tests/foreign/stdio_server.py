"""A third-party-style MCP server over stdio: the official SDK only, no mcp-lifecycle."""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("foreign-stdio")


@server.tool()
def echo(text: str) -> str:
    """Say it back."""
    return text


@server.tool()
def greeting() -> str:
    """The GREETING its environment holds."""
    return os.environ.get("GREETING", "")


if __name__ == "__main__":
    server.run()
