"""stdio servers and FastMCP servers under the same lifecycle."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import TESTS, Lifecycle, free_port


@pytest.fixture
def stdio(lifecycle: Lifecycle) -> Lifecycle:
    lifecycle.script = TESTS / "servers" / "stdio_server.py"
    return lifecycle


def test_stdio_server_refuses_to_detach(stdio: Lifecycle) -> None:
    result = stdio.run("start")
    assert result.code == 5
    assert "speaks MCP over stdio and cannot run detached" in result.err
    assert "Hint: let the MCP client run `start --foreground`" in result.err
    assert stdio.run("restart").code == 5
    assert not stdio.pid_file.exists()


def test_stdio_probe_spawns_a_private_instance(stdio: Lifecycle) -> None:
    result = stdio.run("health", "--probe", "--json")
    assert result.code == 0, result.out
    data = result.json()
    assert data["healthy"] is True
    assert "over stdio ok" in data["checks"][0]["detail"]
    assert "1 tools" in data["checks"][0]["detail"]
    assert stdio.run("status").code == 2


def test_stdio_foreground_serves_a_real_client(stdio: Lifecycle) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(stdio.script), "start", "--foreground"],
        env=stdio.env,
        cwd=str(stdio.marks),
    )

    async def talk() -> str:
        async with Client(params) as client:
            result = await client.call_tool("shout", {"text": "hello"})
            return str(result.content[0].text)  # type: ignore[union-attr]

    assert anyio.run(talk) == "HELLO"


@pytest.fixture
def fast(lifecycle: Lifecycle) -> Lifecycle:
    pytest.importorskip("fastmcp")
    lifecycle.script = TESTS / "servers" / "fastmcp_server.py"
    lifecycle.set_env(MCP_SERVER_PORT=str(free_port()))
    return lifecycle


def test_fastmcp_server_lifecycle(fast: Lifecycle) -> None:
    started = fast.run("start", "--json")
    assert started.code == 0, started.err
    url = started.json()["url"]
    probe = fast.run("health", "--probe", "--json")
    assert probe.code == 0, probe.out
    port = fast.env["MCP_SERVER_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
        assert json.loads(response.read())["ready"] is True

    async def call() -> object:
        async with fast.client(url) as client:
            return (await client.call_tool("double", {"n": 21})).structured_content

    assert anyio.run(call) == {"result": 42}
    stopped = fast.run("stop", "--json")
    assert stopped.code == 0
    assert stopped.json()["forced"] is False
    assert (fast.marks / "lifespan-teardown").read_text() == "done"
    assert not fast.pid_file.exists()
    assert os.path.exists(fast.lock_file)


def test_stdio_server_stops_on_sigterm_while_its_client_holds_stdin(
    stdio: Lifecycle, tmp_path: Path
) -> None:
    import signal
    import socket
    import subprocess

    # Serving, stdin open: once it said READY (its handlers are in place by then; a signal
    # before that, while a loaded machine imports the SDK, would end it the default way, and
    # under coverage its SIGTERM handler is coverage's own until then).
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(60)
        proc = subprocess.Popen(
            stdio.command("start", "--foreground"),
            env={**stdio.env, "NOTIFY_SOCKET": address},
            cwd=stdio.marks,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert notify.recv(100) == b"READY=1"
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
            assert proc.returncode == 0
            assert out == b"", "nothing but the protocol may reach stdout"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_foreground_errors_never_reach_stdout(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("start", "--foreground", "--json", TOY_MODE="crash")
    assert result.code == 1
    assert result.out == ""
    assert "boom" in result.err
