"""The HTTP guard holds a WebSocket handshake to the rules of a request (an author's app may
serve WebSockets, and none may be reached without the token), and lets only a probe's GET of
an open path through without it. Driven with ASGI's own messages."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcp_lifecycle.transports.http_server import Guard

HOST = b"127.0.0.1:8000"


def _call(guard: Guard, scope: dict[str, Any]) -> tuple[bool, list[Any]]:
    """Whether the app behind the guard was reached, and what the guard sent back."""
    reached: list[bool] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, str]:  # asked only by a refused handshake
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    guard.app = app
    anyio.run(guard, {**scope, "headers": [(b"host", HOST), *scope["headers"]]}, receive, send)
    return bool(reached), sent


def _handshake(guard: Guard, headers: list[tuple[bytes, bytes]]) -> tuple[bool, list[Any]]:
    return _call(guard, {"type": "websocket", "path": "/ws", "headers": headers})


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


def test_only_a_probes_get_of_an_open_path_needs_no_token(guard: Guard) -> None:
    probe = {"type": "http", "method": "GET", "path": "/healthz", "headers": []}
    assert _call(guard, probe)[0]
    # Any other method there, or a WebSocket, could fall through to a catch-all route.
    reached, sent = _call(guard, {**probe, "method": "POST"})
    assert not reached
    assert sent[0]["status"] == 401
    reached, sent = _call(guard, {**probe, "type": "websocket"})
    assert not reached
    assert sent == [{"type": "websocket.close", "code": 1008}]
