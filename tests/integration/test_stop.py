"""Whom `stop` signals: only a process proven to be our server, and with it only its own
process group."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psutil
import pytest

from tests.conftest import CLI_POLL, Lifecycle, gone, wait_for

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


def test_stop_signals_only_the_process_of_a_foreground_server(lifecycle: Lifecycle) -> None:
    # A foreground server shares our process group: stop must not signal the group.
    with lifecycle.foreground() as proc:
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=15, interval=CLI_POLL)
        assert os.getpgid(proc.pid) != proc.pid
        result = lifecycle.run("stop")
        assert result.code == 0, result.err
        proc.communicate(timeout=10)
        assert proc.returncode == 0


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
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=15, interval=CLI_POLL)
        assert os.getpgid(stranger.pid) == server.pid
        assert lifecycle.run("stop").code == 0
        server.wait(timeout=10)
        time.sleep(0.2)
        assert stranger.poll() is None, "a stranger in the server's group was signalled"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_stop_without_pidfd_support(lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_lifecycle.control.stop import stop_server
    from mcp_lifecycle.files.paths import ServerPaths

    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()

    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd, raising=False)
    result = stop_server(ServerPaths("toy", lifecycle.cache_root), timeout=5)
    assert result.pid == pid
    assert result.forced is False
    assert gone(pid)


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


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_a_server_that_exits_as_stop_signals_it_is_stopped(
    lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    """Verified as ours, then gone before the SIGTERM (it crashed, or another `stop` won):
    stopped, exit 0, not an error about signalling a process that is gone."""
    from mcp_lifecycle.control import process, stop
    from mcp_lifecycle.files.paths import ServerPaths

    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    real_leads_session = process.leads_session

    def exits_first(target: int) -> bool:  # runs between the verification and the SIGTERM
        leads = real_leads_session(target)
        os.kill(target, signal.SIGKILL)
        assert wait_for(lambda: not psutil.pid_exists(target), 10)  # reaped, not a zombie
        return leads

    monkeypatch.setattr(stop, "leads_session", exits_first)
    result = stop.stop_server(ServerPaths("toy", lifecycle.cache_root), timeout=5)
    assert result.pid == pid
    assert gone(pid)
    assert lifecycle.run("status").code == 2
