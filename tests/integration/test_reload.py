"""Reload: what a running server takes up, keeps, and reports."""

from __future__ import annotations

import os
import signal

from tests.conftest import Lifecycle, free_port, wait_for


def test_reload_keeps_the_socket_settings(lifecycle: Lifecycle) -> None:
    settings = lifecycle.marks / "settings"
    settings.mkdir()
    first, second = free_port(), free_port()
    (settings / "toy.yaml").write_text(f"port: {first}\n")
    assert lifecycle.run("start").code == 0
    (settings / "toy.yaml").write_text(f"port: {second}\nlog_level: DEBUG\n")
    os.kill(lifecycle.pid(), signal.SIGHUP)
    assert wait_for(lambda: "until the next restart" in lifecycle.log_file.read_text())
    assert wait_for(lambda: lifecycle.snapshot()["last_reload_at"] is not None)
    assert lifecycle.snapshot()["url"] == f"http://127.0.0.1:{first}/mcp"
    assert lifecycle.run("stop").code == 0


def test_reload_of_a_yaml_that_is_not_a_mapping(lifecycle: Lifecycle) -> None:
    settings = lifecycle.marks / "settings"
    settings.mkdir()
    assert lifecycle.run("start", MCP_SERVER_HEARTBEAT_SECONDS="0.2").code == 0
    (settings / "toy.yaml").write_text("42\n")
    os.kill(lifecycle.pid(), signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in lifecycle.log_file.read_text())
    (settings / "toy.yaml").unlink()
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0


def test_failing_reload_hook_keeps_the_server_up(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_RELOAD_FAIL="1")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: "reload hook failed" in lifecycle.log_file.read_text())
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0
