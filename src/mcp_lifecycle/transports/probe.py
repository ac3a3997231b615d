"""The live MCP check: a real handshake with the official client, then a tools listing.

The SDK is imported only when a probe runs (`health --probe`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def connect(target: Any, token: str | None = None) -> AsyncIterator[Any]:
    """The official client, connected to `target` (a URL, or stdio parameters), carrying the
    server's bearer token when there is one."""
    from mcp import Client

    if token is None or not isinstance(target, str):
        async with Client(target) as client:
            yield client
        return
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(target, http_client=http)) as client,
    ):
        yield client


def handshake(
    target: Any, where: str, timeout: float, token: str | None = None
) -> tuple[bool, str]:
    """Connect to `target` (a URL, or stdio parameters) and list its tools, within `timeout`.

    Protocol revision 2026-07-28 has no ping: connect + tools/list works against old and new
    servers alike.
    """
    import anyio

    # The SDK's import (its client and transports with it) takes ~0.8 s idle and several
    # seconds on a loaded machine: the server's time starts once it is in, or a slow import
    # would be the server's fault.
    import mcp  # noqa: F401

    async def talk() -> list[str]:
        with anyio.fail_after(timeout):
            async with connect(target, token) as client:
                result = await client.list_tools()
                return [tool.name for tool in result.tools]

    began = time.monotonic()
    try:
        names = anyio.run(talk)
    except TimeoutError:
        return False, f"no MCP answer {where} within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure is the probe's answer
        return False, f"MCP handshake {where} failed: {root_cause(exc)}"
    elapsed = (time.monotonic() - began) * 1000
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return True, f"MCP handshake {where} ok in {elapsed:.0f} ms; {len(names)} tools ({shown})"


def root_cause(exc: BaseException) -> str:
    """The innermost error of an exception group or chain: what actually went wrong."""
    while True:
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        elif exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            break
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
