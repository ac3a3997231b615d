"""The listening socket our HTTP servers bind themselves."""

from __future__ import annotations

import asyncio
import socket

from mcp_lifecycle.transports.http_server import _bind


def test_connections_to_our_socket_send_without_delay() -> None:
    """asyncio sets TCP_NODELAY only on sockets that say they are TCP: without it, Nagle held
    every MCP answer ~40 ms for the client's delayed ACK (45 ms a request instead of 2.5)."""
    listener = _bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    class Record(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Record, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(accept_one())
    assert seen == [1]
