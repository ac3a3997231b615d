"""Only the owner's clients reach a local server: a bearer token per server, and no web page
through DNS rebinding. Staged with raw HTTP, a second real user, and the official client."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import stat
import subprocess
from collections.abc import Iterator

import anyio
import pytest

from tests.conftest import (
    TESTS,
    Lifecycle,
    free_port,
    isolated_lifecycle,
    new_test_token,
    wait_for,
)
from tests.forkserver import ForkServer
from tests.security.conftest import OtherUser

INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "stranger", "version": "1"},
        },
    }
)


def _post(port: int, path: str = "/mcp", **headers: str) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    base = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    connection.request("POST", path, body=INITIALIZE, headers={**base, **headers})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


ENGINES = ["sdk", "fastmcp"]


@contextlib.contextmanager
def _serving(lifecycle: Lifecycle, engine: str) -> Iterator[Lifecycle]:
    """A running HTTP server, by the official SDK's handler or by FastMCP's."""
    if engine == "fastmcp":
        pytest.importorskip("fastmcp")
        lifecycle.script = TESTS / "servers" / "fastmcp_server.py"
    else:
        lifecycle.script = TESTS / "servers" / "slow_mcp.py"
    # The probes here test who may talk, not how fast: a loaded machine gets time to answer.
    lifecycle.set_env(MCP_SERVER_PORT=str(free_port()), MCP_SERVER_PROBE_TIMEOUT_SECONDS="30")
    started = lifecycle.run("start")
    assert started.code == 0, started.err
    try:
        yield lifecycle
    finally:
        assert lifecycle.run("stop").code == 0


@pytest.fixture(scope="module", params=ENGINES)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    forks: ForkServer | None,
) -> Iterator[Lifecycle]:
    """One server per engine for the tests that only talk to it and look at its files: an MCP
    server is the costliest process the suite starts."""
    root = tmp_path_factory.mktemp("served")
    with (
        isolated_lifecycle(root, new_test_token(), forks) as lifecycle,
        _serving(lifecycle, request.param) as server,
    ):
        yield server


@pytest.fixture(params=ENGINES)
def own_server(request: pytest.FixtureRequest, lifecycle: Lifecycle) -> Iterator[Lifecycle]:
    """A server of this test's own, for a test that changes it."""
    with _serving(lifecycle, request.param) as server:
        yield server


def _port(lifecycle: Lifecycle) -> int:
    return int(lifecycle.env["MCP_SERVER_PORT"])


def _token(lifecycle: Lifecycle) -> str:
    return (lifecycle.cache_root / f"{lifecycle.name}.token").read_text().strip()


def _owner_lists_tools(lifecycle: Lifecycle) -> list[str]:
    url = f"http://127.0.0.1:{_port(lifecycle)}/mcp"

    async def talk() -> list[str]:
        async with lifecycle.client(url) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    return anyio.run(talk)


def test_foreign_host_and_origin_are_refused_on_every_handler(served: Lifecycle) -> None:
    port, token = _port(served), _token(served)
    bearer = f"Bearer {token}"
    assert _post(port, Authorization=bearer)[0] == 200
    assert _post(port, Authorization=bearer, Host=f"evil.example:{port}")[0] == 421
    assert _post(port, Authorization=bearer, Origin="http://evil.example")[0] == 403
    assert _post(port, Authorization=bearer, Origin=f"http://localhost:{port}")[0] == 200
    assert _owner_lists_tools(served)


def test_requests_without_the_right_token_get_401(served: Lifecycle) -> None:
    port, token = _port(served), _token(served)
    missing, headers = _post(port)
    assert missing == 401
    assert headers["www-authenticate"].startswith("Bearer")
    wrong, headers = _post(port, Authorization="Bearer not-the-token")
    assert wrong == 401
    assert 'error="invalid_token"' in headers["www-authenticate"]
    assert _post(port, Authorization=f"Basic {token}")[0] == 401
    in_query = _post(port, path=f"/mcp?access_token={token}")[0]
    assert in_query == 401, "a token in the query string must not count"
    # Nor be written to the log by the access log line of that request, in whatever form the
    # request named its target (a proxy may pass on the absolute form).
    absolute = _post(port, path=f"http://127.0.0.1:{port}/mcp?access_token={token}")[0]
    assert absolute == 401
    assert wait_for(lambda: "POST /mcp?(query hidden) HTTP/1.1" in served.log_file.read_text())
    written = f'"POST http%3A//127.0.0.1%3A{port}/mcp?(query hidden) HTTP/1.1" 401'
    assert wait_for(lambda: written in served.log_file.read_text())
    assert token not in served.log_file.read_text()
    # The probe routes stay open and reveal only a state.
    for route in ("/healthz", "/readyz"):
        status, body = _get(port, route)
        assert status == 200
        assert set(json.loads(body)) <= {"ok", "ready", "state"}


def _websocket_handshake(port: int, path: str, **headers: str) -> bytes:
    """The status line a WebSocket handshake gets, sent raw as any client would."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return conn.recv(4096).split(b"\r\n", 1)[0]


def test_a_websocket_handshake_is_refused_and_its_query_never_logged(served: Lifecycle) -> None:
    port, token = _port(served), _token(served)
    assert _websocket_handshake(port, f"/mcp?access_token={token}") == b"HTTP/1.1 403 Forbidden"
    wrong = _websocket_handshake(port, "/mcp", Authorization="Bearer not-the-token")
    assert wrong == b"HTTP/1.1 403 Forbidden"
    # uvicorn writes each handshake to its log with the path and query: the query is hidden.
    assert wait_for(lambda: "WebSocket /mcp?(query hidden)" in served.log_file.read_text())
    assert token not in served.log_file.read_text()


STRANGER = """
import http.client, json, sys
port = int(sys.argv[1])
codes = []
for method in ("POST", "GET", "DELETE"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = sys.argv[2] if method == "POST" else None
    c.request(method, "/mcp", body=body, headers={
        "Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream"})
    codes.append(c.getresponse().status)
print(json.dumps(codes))
"""


def test_another_user_cannot_use_the_server(served: Lifecycle, other_user: OtherUser) -> None:
    port = _port(served)
    stranger = other_user.popen(other_user.python, "-c", STRANGER, str(port), INITIALIZE)
    out, err = stranger.communicate(timeout=30)
    assert stranger.returncode == 0, err
    assert json.loads(out) == [401, 401, 401]
    assert _owner_lists_tools(served)  # while the owner's client works
    token_file = served.cache_root / f"{served.name}.token"
    reader = other_user.popen("cat", str(token_file))
    _, err = reader.communicate(timeout=10)
    assert reader.returncode != 0  # and they cannot read the token


def test_rotate_token_then_reload(own_server: Lifecycle) -> None:
    served = own_server
    port, old = _port(served), _token(served)
    rotated = served.run("rotate-token")
    assert rotated.code == 0, rotated
    assert "reload" in rotated.out
    new = _token(served)
    assert new != old
    assert old not in rotated.out + rotated.err
    assert new not in rotated.out + rotated.err
    assert _post(port, Authorization=f"Bearer {old}")[0] == 200  # until the reload
    assert served.run("reload").code == 0
    assert _post(port, Authorization=f"Bearer {old}")[0] == 401
    assert _post(port, Authorization=f"Bearer {new}")[0] == 200
    config = served.run("client-config", "--json")
    assert config.code == 0, config
    entry = config.json()["mcpServers"][served.name]
    assert entry == {
        "type": "http",
        "url": f"http://127.0.0.1:{port}/mcp",
        "headers": {"Authorization": f"Bearer {new}"},
    }
    text = served.run("client-config")
    assert ".mcp.json" in text.err
    assert json.loads(text.out) == config.json()


def test_the_token_is_private_and_never_shown_elsewhere(served: Lifecycle) -> None:
    token_file = served.cache_root / f"{served.name}.token"
    token = _token(served)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    pid = served.pid()
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        assert token.encode() not in handle.read()
    with open(f"/proc/{pid}/environ", "rb") as handle:
        assert token.encode() not in handle.read()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert token not in ps.stdout
    assert token not in served.log_file.read_text()
    assert token not in served.snapshot_file.read_text()
    for command in (["config", "--json"], ["status", "--json"], ["health", "--probe"],
                    ["service", "systemd"],
                    ["service", "kubernetes", "--image", "r/x:1", "--command", "x"]):  # fmt: skip
        result = served.run(*command)
        assert token not in result.out + result.err, command
    assert served.run("health", "--probe").code == 0  # our own probe carries it


def test_auth_none_lets_anyone_connect(lifecycle: Lifecycle) -> None:
    lifecycle.script = TESTS / "servers" / "slow_mcp.py"
    port = free_port()
    lifecycle.set_env(MCP_SERVER_PORT=str(port), MCP_SERVER_AUTH="none")
    assert lifecycle.run("start").code == 0
    try:
        assert _post(port)[0] == 200
        assert _post(port, Host=f"evil.example:{port}")[0] == 421  # rebinding: still refused
        entry = lifecycle.run("client-config", "--json").json()["mcpServers"]["toy"]
        assert "headers" not in entry
        doctor = lifecycle.run("doctor", "--json").json()
        access = next(c for c in doctor["checks"] if c["check"] == "access")
        assert access["level"] == "warn"
        beyond = lifecycle.run("--host", "0.0.0.0", "doctor", "--json").json()
        access = next(c for c in beyond["checks"] if c["check"] == "access")
        assert "beyond loopback" in access["detail"]
        assert not (lifecycle.cache_root / "toy.token").exists()
    finally:
        assert lifecycle.run("stop").code == 0
