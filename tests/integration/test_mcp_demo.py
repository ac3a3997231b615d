"""The demo MCP server over Streamable HTTP, driven through its console script and probed with
the official MCP client."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import anyio
import pytest

from tests.conftest import Lifecycle, free_port, gone, wait_for

DEMO = shutil.which("mcp-lifecycle-demo") or str(Path(sys.executable).parent / "mcp-lifecycle-demo")


@pytest.fixture
def demo(lifecycle: Lifecycle) -> Lifecycle:
    lifecycle.launcher = [DEMO]
    lifecycle.name = "mcp-lifecycle-demo"
    lifecycle.set_env(MCP_SERVER_PORT=str(free_port()))
    return lifecycle


def _call(demo: Lifecycle, url: str, tool: str, args: dict[str, object]) -> object:
    async def run() -> object:
        async with demo.client(url) as client:
            result = await client.call_tool(tool, args)
            return result.structured_content

    return anyio.run(run)


def test_demo_serves_mcp_and_stops_cleanly(demo: Lifecycle) -> None:
    started = demo.run("start", "--json")
    assert started.code == 0, started.err
    info = started.json()
    url = info["url"]
    assert url == f"http://127.0.0.1:{demo.env['MCP_SERVER_PORT']}/mcp"

    status = demo.run("status", "--json")
    assert status.code == 0
    assert status.json()["url"] == url

    probe = demo.run("health", "--probe", "--json")
    assert probe.code == 0, probe.out
    checks = {check["name"]: check for check in probe.json()["checks"]}
    assert checks["mcp"]["ok"] is True
    assert "3 tools" in checks["mcp"]["detail"]
    recorded = demo.run("health", "--json").json()
    assert [c["name"] for c in recorded["checks"]] == ["process", "listener", "mcp"]

    assert _call(demo, url, "add", {"a": 2, "b": 3}) == {"result": 5.0}
    served_by = _call(demo, url, "server_info", {})
    assert isinstance(served_by, dict)
    assert served_by["pid"] == info["pid"]

    called = demo.run("call", "word_count", '{"text": "one two three"}')
    assert called.code == 0, called.err
    assert called.out.strip() == "3"

    stopped = demo.run("stop", "--json")
    assert stopped.code == 0
    assert stopped.json()["forced"] is False, "uvicorn must drain on SIGTERM, not be killed"
    assert gone(info["pid"])
    assert demo.snapshot()["state"] == "stopped"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", int(demo.env["MCP_SERVER_PORT"])))  # the port is free again


def test_probe_fails_when_the_mcp_endpoint_does_not_answer(demo: Lifecycle) -> None:
    assert demo.run("start").code == 0
    pid = demo.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        result = demo.run("health", "--probe", MCP_SERVER_PROBE_TIMEOUT_SECONDS="1")
        assert result.code == 4
        assert "no MCP answer" in result.out
    finally:
        os.kill(pid, signal.SIGCONT)
    assert demo.run("stop").code == 0


def test_port_in_use_fails_start_with_a_clear_message(demo: Lifecycle) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(demo.env["MCP_SERVER_PORT"])))
        holder.listen()
        result = demo.run("start")
    assert result.code == 1
    port = demo.env["MCP_SERVER_PORT"]
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.err
    assert "Hint: choose another port" in result.err
    assert not demo.pid_file.exists()


def test_demo_sigterm_runs_cleanup(demo: Lifecycle) -> None:
    assert demo.run("start").code == 0
    pid = demo.pid()
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: gone(pid))
    assert not demo.pid_file.exists()
    assert demo.snapshot()["state"] == "stopped"
    assert "Finished server process" in demo.log_file.read_text()


def test_probe_of_a_server_that_does_not_speak_mcp(lifecycle: Lifecycle) -> None:
    # The toy server serves no HTTP at all: the handshake must fail cleanly.
    lifecycle.set_env(MCP_SERVER_PORT=str(free_port()))
    assert lifecycle.run("start").code == 0
    result = lifecycle.run("health", "--probe", "--json")
    assert result.code == 4
    checks = {check["name"]: check for check in result.json()["checks"]}
    assert checks["mcp"]["ok"] is False
    assert "failed" in checks["mcp"]["detail"]
    assert lifecycle.run("stop").code == 0


def test_repeated_sigterm_during_shutdown(demo: Lifecycle) -> None:
    assert demo.run("start").code == 0
    pid = demo.pid()
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    assert wait_for(lambda: gone(pid))
    assert not demo.pid_file.exists()
    assert demo.snapshot()["state"] == "stopped"


def test_call_command_errors(demo: Lifecycle) -> None:
    bad = demo.run("call", "add", "{not json")
    assert bad.code == 5
    assert "not JSON" in bad.err
    down = demo.run("call", "add", '{"a": 1, "b": 2}')
    assert down.code == 1
    assert "is the server running?" in down.err


def test_http_handler_needs_a_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_lifecycle import MCPServerSettings
    from mcp_lifecycle.demo.tools import build_server
    from mcp_lifecycle.errors import ConfigurationError
    from mcp_lifecycle.server.runtime import ServerRuntime
    from mcp_lifecycle.settings.model import load_settings
    from mcp_lifecycle.transports.http_server import streamable_http_handler

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MCP_SERVER_PORT", raising=False)
    settings = load_settings(MCPServerSettings, "noport", {"cache_root": tmp_path / "c"})
    with pytest.raises(ConfigurationError, match="needs a port"):
        ServerRuntime(settings, streamable_http_handler(build_server)).run()


def test_call_uses_this_invocations_global_flags(demo: Lifecycle) -> None:
    """A server started with `--port P` (no variable) is reached by `call` given the same flag,
    before or after the command: the command reads this invocation's settings."""
    port = demo.env.pop("MCP_SERVER_PORT")
    assert demo.run("--port", port, "start").code == 0
    try:
        for args in (("--port", port, "call"), ("call", "--port", port)):
            called = demo.run(*args, "add", '{"a": 2, "b": 3}')
            assert called.code == 0, called.err
            assert called.out.strip() == "5.0"
    finally:
        assert demo.run("--port", port, "stop").code == 0
