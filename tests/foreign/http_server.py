"""A third-party-style MCP server over Streamable HTTP: the official SDK only, no mcp-lifecycle."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("foreign-http")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


if __name__ == "__main__":
    if "--crash" in sys.argv:
        print("foreign-http: cannot open its database, giving up", file=sys.stderr)
        sys.exit(3)
    server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
