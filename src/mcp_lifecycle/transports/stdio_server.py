"""MCP over stdio: a foreground handler, and the probe that spawns the server to talk to it.

A stdio server cannot be detached (its stdin would be /dev/null: EOF, exit) and each MCP client
spawns its own instance, so there is no PID file or lock for it: `start --foreground` serves one
client, and `health --probe` starts a private instance and lists its tools.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer


def stdio_handler(build_server: Callable[[], MCPServer[Any]]) -> Callable[[], None]:
    """A start handler that serves `build_server()` over stdin/stdout until EOF or SIGTERM."""

    def run() -> None:
        import anyio

        from mcp_lifecycle.server.readiness import notify_ready

        server = build_server()
        notify_ready()
        anyio.run(server.run_stdio_async)

    return run


def probe_stdio(
    command: list[str], timeout: float, env: Mapping[str, str] | None = None
) -> tuple[bool, str]:
    """Spawn the server over stdio with the official client and list its tools."""
    from mcp.client.stdio import StdioServerParameters

    from mcp_lifecycle.transports.probe import handshake

    params = StdioServerParameters(
        command=command[0], args=command[1:], env={**os.environ, **(env or {})}
    )
    return handshake(params, "over stdio", timeout)
