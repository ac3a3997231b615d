"""A real MCP server wired through MCPServerCLIFactory: the three lines, plus one own command.

The MCP SDK, the tool code and our own command (`call`, which needs Typer for its arguments)
are imported only where they run, so `status`, `health` and `stop` load none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_lifecycle.cli import MCPServerCLIFactory
from mcp_lifecycle.transports.http_server import streamable_http_handler

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

SERVER_NAME = "mcp-lifecycle-demo"


def build_server() -> MCPServer[Any]:
    from mcp_lifecycle.demo.tools import build_server as build

    return build()


factory = MCPServerCLIFactory(
    SERVER_NAME,
    settings="mcp_lifecycle.demo.settings:DemoSettings",
    start_handler=streamable_http_handler(build_server),
)
factory.add_command("mcp_lifecycle.demo.commands:call")
app = factory.create_app()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
