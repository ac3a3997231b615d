"""The HTTP guard holds a WebSocket handshake to the rules of a request: an author's app may
serve WebSockets, and none may be reached without the token. Driven with ASGI's own messages."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcp_lifecycle.transports.http_server import Guard

HOST = b"127.0.0.1:8000"


def _handshake(guard: Guard, headers: list[tuple[bytes, bytes]]) -> tuple[bool, list[Any]]:
    """Whether the app behind the guard was reached, and what the guard sent back."""
    reached: list[bool] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, str]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"host", HOST), *headers]}
    guard.app = app
    anyio.run(guard, scope, receive, send)
    return bool(reached), sent


@pytest.fixture
def guard() -> Guard:
    return Guard(
        None, open_paths=("/healthz",), token=lambda: "secret", hosts={HOST.decode()}, origins=set()
    )


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Bearer wrong")],
        [(b"authorization", b"Bearer secret"), (b"origin", b"http://evil.example")],
    ],
)
def test_a_websocket_without_the_token_is_refused(
    guard: Guard, headers: list[tuple[bytes, bytes]]
) -> None:
    reached, sent = _handshake(guard, headers)
    assert not reached
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_a_websocket_with_the_token_reaches_the_app(guard: Guard) -> None:
    reached, sent = _handshake(guard, [(b"authorization", b"Bearer secret")])
    assert reached
    assert sent == []
