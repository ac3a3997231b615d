"""The Typer edge: the factory, the commands, rendering, and the one place where exceptions
become messages and exit codes. Domain modules never import this package."""

from mcp_lifecycle.cli.factory import MCPServerCLIFactory

__all__ = ["MCPServerCLIFactory"]
