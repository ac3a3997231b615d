"""Starting: what a failed or interrupted start leaves behind (nothing), and the foreground
start as systemd and containers run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import CLI_POLL, TESTS, Lifecycle, free_port, gone, wait_for


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


def test_a_lifespan_failure_is_not_called_a_port_problem(lifecycle: Lifecycle) -> None:
    lifecycle.script = TESTS / "servers" / "bad_lifespan.py"
    result = lifecycle.run("start", MCP_SERVER_PORT=str(free_port()))
    assert result.code == 1
    assert "the MCP application failed to start" in result.err
    assert "database unreachable" in result.err  # from the log tail
    assert "port" not in result.err.splitlines()[0]
    assert not lifecycle.pid_file.exists()


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


def test_start_lock_contention_times_out(lifecycle: Lifecycle, spawn: Any) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)\n"
    )
    holder = spawn(
        [sys.executable, "-c", code, str(lifecycle.cache_root / "toy.start.lock")],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"held"
    result = lifecycle.run("start", "--timeout", "0.3")
    assert result.code == 7
    assert "another `start`" in result.err


def test_log_is_rotated_at_start_when_too_big(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.log_file.write_text("x" * 5000)
    (lifecycle.cache_root / "toy.log.1").write_text("older")
    result = lifecycle.run("start", MCP_SERVER_LOG_MAX_BYTES="1024")
    assert result.code == 0, result.err
    assert (lifecycle.cache_root / "toy.log.1").read_text() == "x" * 5000
    assert (lifecycle.cache_root / "toy.log.2").read_text() == "older"
    assert "starting toy" in lifecycle.log_file.read_text()
    assert lifecycle.run("stop").code == 0


def test_foreground_start_cleans_a_stale_pid_file(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text("abc")
    with lifecycle.foreground() as proc:
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=15, interval=CLI_POLL)
        assert lifecycle.pid() == proc.pid
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert "removed stale PID file" in err
        assert proc.returncode == 0


def test_start_handler_calling_exit(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="exit_call")
    result = lifecycle.run("start")
    assert result.code == 1
    assert "the start handler called exit(4)" in result.err


def test_foreground_crash_exits_1_without_traceback(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("start", "--foreground", TOY_MODE="crash")
    assert result.code == 1
    assert "boom: the database is unreachable" in result.err
    assert not lifecycle.pid_file.exists()


def test_systemd_notify_protocol_in_foreground(lifecycle: Lifecycle, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(10)
        proc = lifecycle.popen(
            "start",
            "--foreground",
            NOTIFY_SOCKET=address,
            WATCHDOG_USEC="1000000",
            MCP_SERVER_HEARTBEAT_SECONDS="0.1",
        )
        try:
            messages = [sock.recv(100).decode() for _ in range(2)]
            assert messages == ["READY=1", "WATCHDOG=1"]
            os.kill(proc.pid, signal.SIGHUP)
            seen: list[str] = []
            while "READY=1" not in seen:
                seen.append(sock.recv(100).decode())
            assert "RELOADING=1" in seen
            proc.send_signal(signal.SIGTERM)
            while "STOPPING=1" not in seen:
                seen.append(sock.recv(100).decode())
            proc.communicate(timeout=10)
            assert proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
