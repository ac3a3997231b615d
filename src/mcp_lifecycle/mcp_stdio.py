"""MCP over stdio: a foreground handler, and the probe that spawns the server to talk to it.

A stdio server cannot be detached (its stdin would be /dev/null: EOF, exit) and each MCP client
spawns its own instance, so there is no PID file or lock for it: `start --foreground` serves one
client, and `health --probe` starts a private instance and lists its tools.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer


def stdio_handler(build_server: Callable[[], MCPServer[Any]]) -> Callable[[], None]:
    """A start handler that serves `build_server()` over stdin/stdout until EOF or SIGTERM."""

    def run() -> None:
        import anyio

        from mcp_lifecycle.readiness import notify_ready

        server = build_server()
        notify_ready()
        anyio.run(server.run_stdio_async)

    return run


def probe_stdio(command: list[str], timeout: float) -> tuple[bool, str]:
    """Spawn the server over stdio with the official client and list its tools."""
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))

    async def handshake() -> list[str]:
        with anyio.fail_after(timeout):
            async with Client(params) as client:
                result = await client.list_tools()
                return [tool.name for tool in result.tools]

    began = time.monotonic()
    try:
        names = anyio.run(handshake)
    except TimeoutError:
        return False, f"no MCP answer over stdio within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure is the probe's answer
        from mcp_lifecycle.mcp_http import _root_cause

        return False, f"MCP handshake over stdio failed: {_root_cause(exc)}"
    elapsed = (time.monotonic() - began) * 1000
    return True, f"MCP handshake over stdio ok in {elapsed:.0f} ms; {len(names)} tools"
