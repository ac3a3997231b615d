"""Self-healing: a supervisor brings a crashed server back, gives up on a crash loop, and never
leaves a server running unmanaged. Real crashes: kill -9, exits after READY, memory growth."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.conftest import (
    CLI_POLL,
    TOKEN_VAR,
    Lifecycle,
    gone,
    live_processes_with_token,
    wait_for,
)

# A server that takes 96 MB once ready, limited to 64 MB, checked five times a second.
GROWS_PAST_64_MB = {
    "TOY_MODE": "grow",
    "TOY_GROW_MB": "96",
    "MCP_SERVER_RESTART_MAX_MEMORY_MB": "64",
    "MCP_SERVER_HEARTBEAT_SECONDS": "0.2",
}


def _status(lifecycle: Lifecycle) -> tuple[int, dict[str, Any]]:
    result = lifecycle.run("status", "--json")
    return result.code, result.json()


def _supervised(
    lifecycle: Lifecycle, policy: str = "on-failure", steady: bool = True, **env: str
) -> dict[str, Any]:
    """Start under a supervisor; `steady`: the server stays up, so its first status is sure."""
    lifecycle.set_env(**{"MCP_SERVER_RESTART_BACKOFF_SECONDS": "0.2", **env})
    started = lifecycle.run("start", "--restart", policy, "--json")
    assert started.code == 0, started.err
    code, status = _status(lifecycle)
    if steady:
        assert started.json()["pid"] == lifecycle.pid()
        assert code == 0, status
        assert status["supervisor_pid"] == started.json()["pid"]
        assert status["pid"] != status["supervisor_pid"]
        assert status["restarts"] == 0
    return status


def _once_ended(lifecycle: Lifecycle, timeout: float) -> dict[str, Any]:
    """The status once the supervisor stopped for good (exit 2)."""
    seen: dict[str, Any] = {}

    def ended() -> bool:
        code, status = _status(lifecycle)
        seen.update(status)
        return code == 2

    assert wait_for(ended, timeout=timeout, interval=CLI_POLL), seen
    # `status` says so once the supervisor has let go of the server's name; its process still
    # has its own exit to run (its log flushed, coverage saved) and is gone a moment later.
    token = lifecycle.env[TOKEN_VAR]
    assert wait_for(lambda: not live_processes_with_token(token), timeout=10)
    return seen


def _back_with_a_new_server(lifecycle: Lifecycle, old: int, restarts: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def back() -> bool:
        code, status = _status(lifecycle)
        seen.update(status)
        return (
            code == 0
            and status["pid"] != old
            and status["restarts"] == restarts
            and status["state"] == "ready"
        )

    assert wait_for(back, timeout=20, interval=CLI_POLL), seen
    return seen


def test_a_killed_server_comes_back(lifecycle: Lifecycle) -> None:
    first = _supervised(lifecycle)
    os.kill(first["pid"], signal.SIGKILL)
    again = _back_with_a_new_server(lifecycle, first["pid"], restarts=1)
    assert again["supervisor_pid"] == first["supervisor_pid"]
    assert again["last_exit"]["signal"] == signal.SIGKILL
    assert again["state"] == "ready"
    log = lifecycle.log_file.read_text()
    assert f"signal {int(signal.SIGKILL)}" in log
    assert "restarting toy" in log
    assert lifecycle.run("stop").code == 0
    assert gone(again["pid"])
    assert gone(again["supervisor_pid"])
    assert lifecycle.run("status").code == 2


def test_a_crash_loop_ends_with_the_reason(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="exit_after_ready", MCP_SERVER_RESTART_MAX_RETRIES="2")
    _supervised(lifecycle, steady=False)
    status = _once_ended(lifecycle, timeout=30)
    assert "gave up after 2 restarts" in status["reason"]
    assert "exit code 1" in status["reason"]
    assert status["restarts"] == 2
    assert status["last_exit"]["code"] == 1
    runs = (lifecycle.marks / "runs.txt").read_text().split()
    assert len(runs) == 3  # the first run and two restarts
    assert all(gone(int(pid)) for pid in runs)
    assert not lifecycle.pid_file.exists()
    text = lifecycle.run("status").out
    assert "gave up after 2 restarts" in text


def test_killing_the_supervisor_leaves_nothing_running(lifecycle: Lifecycle) -> None:
    status = _supervised(lifecycle)
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    assert wait_for(lambda: gone(status["pid"]), timeout=10), "the server outlived its supervisor"
    code, after = _status(lifecycle)
    assert code == 8, after  # its PID file is all that is left: stale, and `start` cleans it
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("stop").code == 0


def test_stop_during_the_backoff_is_final(lifecycle: Lifecycle) -> None:
    status = _supervised(lifecycle, MCP_SERVER_RESTART_BACKOFF_SECONDS="30")
    os.kill(status["pid"], signal.SIGKILL)
    assert wait_for(lambda: "restarting toy in" in lifecycle.log_file.read_text(), timeout=10)
    began = time.monotonic()
    assert lifecycle.run("stop").code == 0
    assert time.monotonic() - began < 15, "stop waited for the backoff (30 s)"
    assert gone(status["supervisor_pid"])
    time.sleep(1)
    assert lifecycle.run("status").code == 2
    assert len((lifecycle.marks / "runs.txt").read_text().split()) == 1


def test_a_second_start_is_refused(lifecycle: Lifecycle) -> None:
    _supervised(lifecycle)
    again = lifecycle.run("start", "--restart", "always")
    assert again.code == 3, again.err
    assert "already running" in again.err
    assert lifecycle.run("stop").code == 0


def test_reload_reaches_the_server(lifecycle: Lifecycle) -> None:
    _supervised(lifecycle)
    assert lifecycle.run("reload").code == 0
    assert (lifecycle.marks / "reloads.txt").read_text().split() == ["INFO"]
    assert lifecycle.run("stop").code == 0


def test_on_failure_leaves_a_clean_exit_alone(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="exit_after_ready", TOY_EXIT_CODE="0")
    _supervised(lifecycle, steady=False)
    status = _once_ended(lifecycle, timeout=15)
    assert status["restarts"] == 0
    assert "exited cleanly" in status["reason"]


def test_always_restarts_a_clean_exit(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="exit_after_ready", TOY_EXIT_CODE="0")
    _supervised(lifecycle, policy="always", steady=False)
    seen: dict[str, Any] = {}

    def restarted() -> bool:
        seen.update(_status(lifecycle)[1])
        return (seen["restarts"] or 0) >= 2

    assert wait_for(restarted, timeout=20), seen
    assert seen["last_exit"]["code"] == 0
    assert len((lifecycle.marks / "runs.txt").read_text().split()) >= 2
    assert lifecycle.run("stop").code == 0


def test_a_server_above_its_memory_limit_is_restarted(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(**GROWS_PAST_64_MB)
    _supervised(lifecycle, steady=False)
    log = lifecycle.log_file
    assert wait_for(lambda: "its memory stayed above 64 MB" in log.read_text(), timeout=20)
    runs = lifecycle.marks / "runs.txt"
    assert wait_for(lambda: len(runs.read_text().split()) >= 2, timeout=20)
    assert gone(int(runs.read_text().split()[0]))
    assert (_status(lifecycle)[1]["restarts"] or 0) >= 1
    assert lifecycle.run("stop").code == 0


def test_watch_restarts_on_a_source_change(lifecycle: Lifecycle, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "tool.py").write_text("VERSION = 1\n")
    started = lifecycle.run("start", "--watch", str(source), "--json")
    assert started.code == 0, started.err
    code, first = _status(lifecycle)
    assert code == 0
    assert first["restarts"] == 0
    (source / "notes.txt").write_text("not Python: ignored\n")
    time.sleep(1.5)
    assert _status(lifecycle)[1]["pid"] == first["pid"]
    (source / "tool.py").write_text("VERSION = 2\n")
    again = _back_with_a_new_server(lifecycle, first["pid"], restarts=1)
    assert again["supervisor_pid"] == first["supervisor_pid"]
    assert "changed: tool.py" in lifecycle.log_file.read_text()
    assert lifecycle.run("stop").code == 0


def test_bad_policies_and_paths_are_refused(lifecycle: Lifecycle, tmp_path: Path) -> None:
    bad = lifecycle.run("start", "--restart", "sometimes")
    assert bad.code == 5
    assert "restart_policy" in bad.err
    assert "--restart" in bad.err
    assert lifecycle.run("start", str(tmp_path)).code == 5
    missing = lifecycle.run("start", "--watch", str(tmp_path / "nowhere"))
    assert missing.code == 5
    assert "no such path" in missing.err
    assert lifecycle.run("status").code == 2


def test_while_it_waits_to_restart_status_says_it_is_down(lifecycle: Lifecycle) -> None:
    status = _supervised(lifecycle, MCP_SERVER_RESTART_BACKOFF_SECONDS="30")
    os.kill(status["pid"], signal.SIGKILL)
    seen: dict[str, Any] = {}

    def down() -> bool:
        code, now = _status(lifecycle)
        seen.update(now, code=code)
        return bool(now["state"] == "restarting")

    assert wait_for(down, timeout=10), seen
    assert seen["code"] == 4
    assert seen["pid"] is None
    assert seen["supervisor_pid"] == status["supervisor_pid"]
    assert "is down" in lifecycle.run("status").out
    assert lifecycle.run("stop").code == 0


def test_a_reload_while_it_restarts_waits_for_the_new_server(lifecycle: Lifecycle) -> None:
    status = _supervised(lifecycle, TOY_MODE="slow_ready", TOY_READY_DELAY="1")
    os.kill(status["pid"], signal.SIGKILL)
    assert wait_for(lambda: "restarting toy in" in lifecycle.log_file.read_text(), timeout=10)
    reloaded = lifecycle.run("reload", "--timeout", "20")
    assert reloaded.code == 0, reloaded.err
    code, after = _status(lifecycle)
    assert code == 0, after
    assert after["restarts"] == 1  # the SIGHUP did not kill the new server before its handlers
    assert after["last_exit"]["signal"] == signal.SIGKILL
    assert lifecycle.run("stop").code == 0


def test_a_memory_loop_ends_too(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(**GROWS_PAST_64_MB, MCP_SERVER_RESTART_MAX_RETRIES="1")
    _supervised(lifecycle, steady=False)
    status = _once_ended(lifecycle, timeout=30)
    assert "gave up after 1 restarts" in status["reason"]
    assert len((lifecycle.marks / "runs.txt").read_text().split()) == 2


def test_stop_takes_the_servers_children_along(lifecycle: Lifecycle) -> None:
    _supervised(lifecycle, TOY_MODE="child_ignores_term")
    child = int((lifecycle.marks / "child.pid").read_text())
    assert lifecycle.run("stop").code == 0
    assert wait_for(lambda: gone(child), timeout=10), "the server's child outlived the stop"


def test_a_server_that_ignores_stop_is_killed_by_its_supervisor(lifecycle: Lifecycle) -> None:
    status = _supervised(lifecycle, TOY_MODE="hang_on_stop")
    stopped = lifecycle.run("stop", "--json")
    assert stopped.code == 0, stopped.err
    # The supervisor gives its server less than `stop` gives the supervisor: it ends the
    # server itself, and `stop` never has to kill the supervisor.
    assert stopped.json()["forced"] is False
    assert gone(status["pid"])
    assert gone(status["supervisor_pid"])
    assert "did not stop in time; killing it" in lifecycle.log_file.read_text()
