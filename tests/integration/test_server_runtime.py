"""Inside a running server: its heartbeat and snapshot, and its forked children."""

from __future__ import annotations

import os
import signal

from tests.conftest import CLI_POLL, Lifecycle, gone, wait_for


def test_heartbeat_survives_a_failed_snapshot_write(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(MCP_SERVER_HEARTBEAT_SECONDS="0.1")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    lifecycle.snapshot_file.unlink()
    lifecycle.snapshot_file.mkdir()  # every write now fails
    assert wait_for(lambda: "could not write the health snapshot" in lifecycle.log_file.read_text())
    assert not gone(pid)
    lifecycle.snapshot_file.rmdir()
    assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=5, interval=CLI_POLL)
    assert lifecycle.run("stop").code == 0


def test_a_new_server_does_not_inherit_an_old_probe(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("health", "--probe").code == 0
    assert lifecycle.run("restart").code == 0
    later = lifecycle.run("health", "--json")
    assert later.json()["checks"] == []
    assert lifecycle.run("stop").code == 0


def test_hostile_snapshot_values_never_break_health(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("health", "--probe").code == 0
    import json

    data = json.loads(lifecycle.snapshot_file.read_text())
    data["probe"]["checked_epoch"] = "yesterday"
    data["probe"]["checks"][0]["duration_ms"] = "slow"
    lifecycle.snapshot_file.write_text(json.dumps(data))
    assert lifecycle.run("health").code in (0, 4)
    assert lifecycle.run("stop").code == 0


def test_a_forked_child_does_not_keep_the_server_lock(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="fork_child")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    child = int((lifecycle.marks / "child.pid").read_text())
    try:
        os.kill(pid, signal.SIGKILL)  # the server dies; its forked worker lives on
        assert wait_for(lambda: gone(pid))
        status = lifecycle.run("status")
        assert status.code == 8, status.out
        assert "gone" in status.out
        started = lifecycle.run("start")
        assert started.code == 0, started.err
        assert lifecycle.run("stop").code == 0
    finally:
        os.kill(child, signal.SIGKILL)
        assert wait_for(lambda: gone(child))
