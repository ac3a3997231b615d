"""Faults found in review, each reproduced with real processes."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import TESTS, Lifecycle, free_port, gone, wait_for


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


def test_a_server_dying_hard_before_ready_leaves_no_pid_file(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("start", TOY_MODE="hard_exit")
    assert result.code == 1
    assert "exited with code 3 before it was ready" in result.err
    assert not lifecycle.pid_file.exists()
    assert lifecycle.run("status").code == 2


def test_configuration_errors_in_the_server_exit_5_with_their_hint(lifecycle: Lifecycle) -> None:
    detached = lifecycle.run("start", TOY_MODE="config_error")
    assert detached.code == 5
    assert "the toy needs a database URL" in detached.err
    assert "Hint: set TOY_DATABASE_URL" in detached.err
    foreground = lifecycle.run("start", "--foreground", TOY_MODE="config_error")
    assert foreground.code == 5
    assert "set TOY_DATABASE_URL" in foreground.err


def test_ctrl_c_during_start_takes_the_server_back(lifecycle: Lifecycle) -> None:
    proc = lifecycle.popen("start", TOY_MODE="slow_ready", TOY_READY_DELAY="30")
    assert wait_for(lifecycle.pid_file.exists, timeout=15)
    server = lifecycle.pid()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert "interrupted" in err
    assert wait_for(lambda: gone(server))
    assert not lifecycle.pid_file.exists()


def test_stop_never_signals_the_rest_of_a_foreground_servers_group(
    lifecycle: Lifecycle, spawn: Any
) -> None:
    # Like `server start --foreground | reader` under shell job control: the server leads a
    # process group that also holds a stranger.
    server = subprocess.Popen(
        lifecycle.command("start", "--foreground"),
        env=lifecycle.env,
        cwd=lifecycle.marks,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,
    )
    try:
        stranger = spawn(["sleep", "60"], process_group=server.pid)
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=15)
        assert os.getpgid(stranger.pid) == server.pid
        assert lifecycle.run("stop").code == 0
        server.wait(timeout=10)
        time.sleep(0.2)
        assert stranger.poll() is None, "a stranger in the server's group was signalled"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_stuck_snapshot_lock_never_hangs_stop(lifecycle: Lifecycle, spawn: Any) -> None:
    lifecycle.set_env(MCP_SERVER_HEARTBEAT_SECONDS="0.1")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    holder = spawn(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)\n",
            str(lifecycle.cache_root / "runtime_health.json.lock"),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"held"
    began = time.monotonic()
    result = lifecycle.run("stop", "--timeout", "10", timeout=30)
    assert result.code == 0, result.err
    assert time.monotonic() - began < 15
    assert gone(pid)
    assert not lifecycle.pid_file.exists()
    assert (
        "busy" in lifecycle.log_file.read_text()
        or "could not write" in lifecycle.log_file.read_text()
    )


def test_a_lifespan_failure_is_not_called_a_port_problem(lifecycle: Lifecycle) -> None:
    lifecycle.script = TESTS / "servers" / "bad_lifespan.py"
    result = lifecycle.run("start", MCP_SERVER_PORT=str(free_port()))
    assert result.code == 1
    assert "the MCP application failed to start" in result.err
    assert "database unreachable" in result.err  # from the log tail
    assert "port" not in result.err.splitlines()[0]
    assert not lifecycle.pid_file.exists()


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


def test_stop_without_pidfd_support(lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_lifecycle.control.stop import stop_server
    from mcp_lifecycle.files.paths import ServerPaths

    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()

    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    result = stop_server(ServerPaths("toy", lifecycle.cache_root), timeout=5)
    assert result.pid == pid
    assert result.forced is False
    assert gone(pid)


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


def test_a_symlinked_log_is_refused(lifecycle: Lifecycle, tmp_path: Path) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.log"
    target.write_text("keep\n")
    lifecycle.log_file.symlink_to(target)
    result = lifecycle.run("start")
    assert result.code == 6
    assert target.read_text() == "keep\n"
    assert not lifecycle.pid_file.exists()


def test_two_servers_cannot_share_a_cache_root(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    other = lifecycle.run("start", TOY_NAME="other")
    assert other.code == 5
    assert "in use by the running server 'toy'" in other.err
    assert lifecycle.run("stop").code == 0
    assert psutil.pid_exists(os.getpid())
