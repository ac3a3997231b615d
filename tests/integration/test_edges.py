"""Edges of the lifecycle: orphaned locks, foreground servers, failed writes, systemd notify."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import Lifecycle, gone, wait_for

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
if len(sys.argv) > 2:
    os.ftruncate(fd, 0)
    os.write(fd, sys.argv[2].encode())
print("held", flush=True)
time.sleep(120)
"""


def _hold_lock(spawn: Any, lifecycle: Lifecycle, *record: str) -> subprocess.Popen[bytes]:
    lifecycle.cache_root.mkdir(mode=0o700, exist_ok=True)
    holder: subprocess.Popen[bytes] = spawn(
        [sys.executable, "-c", HOLD_LOCK, str(lifecycle.lock_file), *record],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == b"held"
    return holder


def test_lock_held_by_an_unverifiable_process_is_never_signalled(
    lifecycle: Lifecycle, spawn: Any
) -> None:
    # Like a server's forked child that kept the lock after the server died.
    holder = _hold_lock(spawn, lifecycle)
    lifecycle.pid_file.write_text(f"{holder.pid}\n")
    status = lifecycle.run("status")
    assert status.code == 8
    assert "wrote no identity record" in status.out
    stop = lifecycle.run("stop")
    assert stop.code == 8
    assert "refusing to signal anything" in stop.err
    assert lifecycle.run("start").code == 3
    assert holder.poll() is None
    assert lifecycle.pid_file.exists()


def test_lock_record_of_a_dead_process_is_unverifiable(lifecycle: Lifecycle, spawn: Any) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = f'{{"pid": {dead.pid}, "create_time": 1.0, "boot_id": null, "uid": {os.getuid()}}}'
    holder = _hold_lock(spawn, lifecycle, record)
    status = lifecycle.run("status", "--json")
    assert status.code == 8
    assert "the process is gone" in status.json()["reason"]
    assert holder.poll() is None


def test_stop_signals_only_the_process_of_a_foreground_server(lifecycle: Lifecycle) -> None:
    # A foreground server shares our process group: stop must not signal the group.
    with lifecycle.foreground() as proc:
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=15)
        assert os.getpgid(proc.pid) != proc.pid
        result = lifecycle.run("stop")
        assert result.code == 0, result.err
        proc.communicate(timeout=10)
        assert proc.returncode == 0


def test_foreground_start_cleans_a_stale_pid_file(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text("abc")
    with lifecycle.foreground() as proc:
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=15)
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


def test_failing_reload_hook_keeps_the_server_up(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_RELOAD_FAIL="1")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: "reload hook failed" in lifecycle.log_file.read_text())
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0


def test_heartbeat_survives_a_failed_snapshot_write(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(MCP_SERVER_HEARTBEAT_SECONDS="0.1")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    lifecycle.snapshot_file.unlink()
    lifecycle.snapshot_file.mkdir()  # every write now fails
    assert wait_for(lambda: "could not write the health snapshot" in lifecycle.log_file.read_text())
    assert not gone(pid)
    lifecycle.snapshot_file.rmdir()
    assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=5)
    assert lifecycle.run("stop").code == 0


def test_a_new_server_does_not_inherit_an_old_probe(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("health", "--probe").code == 0
    assert lifecycle.run("restart").code == 0
    later = lifecycle.run("health", "--json")
    assert later.json()["checks"] == []
    assert lifecycle.run("stop").code == 0


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


def test_a_process_of_another_user_is_not_ours(lifecycle: Lifecycle, spawn: Any) -> None:
    if os.getuid() != 0:
        return
    other = spawn(["sleep", "60"], user=65534, cwd="/")
    time.sleep(0.1)
    from mcp_lifecycle.files.identity import identity_of, mismatch_reason

    record = identity_of(other.pid)
    assert (
        mismatch_reason(other.pid, record)
        == f"it runs as uid 65534, not as you (uid {os.getuid()})"
    )
    assert psutil.Process(other.pid).uids().real == 65534


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
