"""Faults, races and bad input: whatever happens, no stranger is signalled, no file is lost and
no process is left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin

import anyio
import psutil
import pytest

from tests.conftest import CLI_POLL, TESTS, Lifecycle, free_port, gone, wait_for

OK_DURING_CHANGE = {0, 2, 3, 4, 8}


@pytest.mark.repetitive
def test_32_concurrent_starts_yield_one_server(lifecycle: Lifecycle) -> None:
    procs = [lifecycle.popen("start") for _ in range(32)]
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err
        codes.append(proc.returncode)
    assert sorted(codes) == [0] + [3] * 31, codes
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0


def test_two_restarts_at_once_end_with_one_server(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: lifecycle.run("restart"), range(2)))
    assert {r.code for r in results} <= {0, 3}, results
    assert 0 in {r.code for r in results}
    status = lifecycle.run("status", "--json")
    assert status.code == 0
    survivors = [
        p for p in psutil.process_iter() if _is_toy_server(p, lifecycle) and not gone(p.pid)
    ]
    assert [p.pid for p in survivors] == [status.json()["pid"]]
    assert lifecycle.run("stop").code == 0


def _is_toy_server(proc: psutil.Process, lifecycle: Lifecycle) -> bool:
    try:
        return proc.environ().get("MCP_SERVER_CACHE_ROOT") == str(lifecycle.cache_root) and (
            "--foreground" in proc.cmdline()
        )
    except psutil.Error:
        return False


def test_stop_racing_start_leaves_a_consistent_state(lifecycle: Lifecycle) -> None:
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=2) as pool:
            started = pool.submit(lifecycle.run, "start")
            time.sleep(0.2)
            stopped = pool.submit(lifecycle.run, "stop")
            start = started.result()
            if start.code == 1:  # the stop came before READY: start says so
                assert "told to stop (SIGTERM or SIGINT) before it was ready" in start.err
            else:
                assert start.code in {0, 3}, start
            assert stopped.result().code in {0, 2, 8}
        final = lifecycle.run("status").code
        assert final in {0, 2}
        lifecycle.run("stop")
        assert lifecycle.run("status").code == 2


@pytest.mark.repetitive
def test_sigkill_at_any_moment_of_start_up(lifecycle: Lifecycle) -> None:
    # The server is killed at points spread over its start-up: before, while and after it
    # takes its lock and writes its PID file and snapshot.
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8):
        proc = lifecycle.popen("start")
        assert wait_for(lambda proc=proc: _server_of(proc) is not None, timeout=15)
        server = _server_of(proc)
        assert server is not None
        time.sleep(delay)
        server.kill()
        proc.communicate(timeout=60)
        assert proc.returncode in {0, 1, 7}
        assert lifecycle.run("status").code in {2, 8}, f"after a kill at {delay}s"
        assert lifecycle.run("start").code == 0, f"no recovery after a kill at {delay}s"
        assert lifecycle.run("stop").code == 0


def _server_of(cli: subprocess.Popen[str]) -> psutil.Process | None:
    try:
        children = psutil.Process(cli.pid).children()
    except psutil.Error:
        return None
    return children[0] if children else None


def test_start_killed_while_waiting_leaves_a_managed_server(lifecycle: Lifecycle) -> None:
    proc = lifecycle.popen("start", TOY_MODE="slow_ready", TOY_READY_DELAY="1")
    assert wait_for(lifecycle.pid_file.exists, timeout=15)
    proc.kill()  # SIGKILL: no chance to take the server back
    proc.wait()
    assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=10, interval=CLI_POLL)
    assert lifecycle.run("stop").code == 0


def test_reboot_with_a_reused_pid(lifecycle: Lifecycle, spawn: Any) -> None:
    # After a reboot: the PID file and the lock's record survive, the lock is free, and the
    # PID now belongs to something else.
    stranger = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text(f"{stranger.pid}\n")
    record = {
        "pid": stranger.pid,
        "create_time": 1.0,
        "boot_id": "an-earlier-boot",
        "uid": os.getuid(),
        "start_ticks": 1,
    }
    lifecycle.lock_file.write_text(json.dumps(record))
    assert lifecycle.run("status").code == 8
    assert lifecycle.run("stop").code == 8
    started = lifecycle.run("start")
    assert started.code == 0, started.err
    assert stranger.poll() is None
    assert lifecycle.run("stop").code == 0
    assert stranger.poll() is None


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"9" * 10_000_000, 8), (bytes(range(256)) * 40, 8), (b"1\n", 8), (b"-1", 8)],
    ids=["huge", "binary", "pid-1", "negative"],
)
def test_bad_pid_files(lifecycle: Lifecycle, content: bytes, code: int) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_bytes(content)
    status = lifecycle.run("status")
    assert status.code == code
    assert lifecycle.run("stop").code == 8
    assert psutil.pid_exists(1)
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("stop").code == 0


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a process as another user")
def test_pid_file_naming_another_users_process(lifecycle: Lifecycle, spawn: Any) -> None:
    other = spawn(["sleep", "60"], user=65534, cwd="/")
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text(f"{other.pid}\n")
    assert lifecycle.run("status").code == 8
    assert lifecycle.run("stop").code == 8
    assert other.poll() is None


def test_directories_where_files_belong(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.mkdir()
    for command in ("status", "start", "stop"):
        result = lifecycle.run(command)
        assert result.code == 6, (command, result)
        assert "not a regular file" in result.err
    lifecycle.pid_file.rmdir()
    lifecycle.lock_file.mkdir()
    assert lifecycle.run("start").code == 6
    lifecycle.lock_file.rmdir()
    lifecycle.snapshot_file.mkdir()
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("status").code == 4  # no snapshot can be written: stale, not a crash
    assert lifecycle.run("stop").code == 0


def test_symlinked_snapshot_and_cache_root(lifecycle: Lifecycle, tmp_path: Any) -> None:
    real = tmp_path / "real-cache"
    real.mkdir(mode=0o700)
    lifecycle.cache_root.symlink_to(real)
    assert lifecycle.run("status").code == 6
    assert lifecycle.run("start").code == 6
    lifecycle.cache_root.unlink()
    lifecycle.cache_root.mkdir(mode=0o700)
    target = tmp_path / "precious.json"
    target.write_text("{}")
    lifecycle.snapshot_file.symlink_to(target)
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("status").code == 4
    assert target.read_text() == "{}", "a write went through the symlink"
    assert lifecycle.run("stop").code == 0


def test_future_and_wrong_shape_snapshots(lifecycle: Lifecycle) -> None:
    # No heartbeat may rewrite the planted snapshots while the test reads them, however slow
    # the machine: one in five minutes.
    lifecycle.set_env(MCP_SERVER_HEALTH_TTL_SECONDS="600", MCP_SERVER_HEARTBEAT_SECONDS="300")
    assert lifecycle.run("start").code == 0
    data = lifecycle.snapshot()
    data["updated_at"] = "2999-01-01T00:00:00+00:00"
    data["updated_monotonic"] = time.monotonic() + 3600
    lifecycle.snapshot_file.write_text(json.dumps(data))
    assert lifecycle.run("status").code == 4
    lifecycle.snapshot_file.write_text(json.dumps([1, 2, 3]))
    assert lifecycle.run("status").code == 4
    assert lifecycle.run("stop").code == 0


@pytest.mark.repetitive
def test_sighup_storm(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start", MCP_SERVER_HEARTBEAT_SECONDS="0.1").code == 0
    pid = lifecycle.pid()
    stop = threading.Event()
    torn: list[str] = []

    def read_snapshots() -> None:
        while not stop.is_set():
            text = lifecycle.snapshot_file.read_text()
            try:
                json.loads(text)
            except ValueError:
                torn.append(text)

    reader = threading.Thread(target=read_snapshots)
    reader.start()
    try:
        for _ in range(100):
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.01)
    finally:
        time.sleep(0.3)
        stop.set()
        reader.join()
    assert not torn
    assert not gone(pid)
    assert wait_for(lambda: lifecycle.snapshot()["last_reload_at"] is not None)
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0


@pytest.mark.parametrize("mode", ["ignore_term", "hang_on_stop", "child_ignores_term"])
def test_hung_servers_stop_within_timeout_plus_2s(lifecycle: Lifecycle, mode: str) -> None:
    assert lifecycle.run("start", TOY_MODE=mode).code == 0
    pid = lifecycle.pid()
    result = lifecycle.run("stop", "--timeout", "1", "--json")
    assert result.code == 0, result.err
    # The stop's own clock (SIGTERM to gone), not the CLI's start-up on a loaded machine.
    assert result.json()["seconds"] < 1 + 2
    assert gone(pid)
    assert not [p for p in psutil.process_iter() if _in_group(p, pid)]


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False


def test_a_wrapper_tree_is_stopped_whole_and_its_port_freed(lifecycle: Lifecycle) -> None:
    port = free_port()
    lifecycle.set_env(TOY_MODE="tree", MCP_SERVER_PORT=str(port))
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    assert wait_for(lambda: len([p for p in psutil.process_iter() if _in_group(p, pid)]) >= 3)
    result = lifecycle.run("stop", "--timeout", "1")
    assert result.code == 0
    assert not [p for p in psutil.process_iter() if _in_group(p, pid)]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the grandchild's port is free at once
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("stop", "--timeout", "1").code == 0


def test_a_stranger_on_the_port(lifecycle: Lifecycle) -> None:
    lifecycle.script = TESTS / "servers" / "slow_mcp.py"
    port = free_port()
    lifecycle.set_env(MCP_SERVER_PORT=str(port))
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        began = time.monotonic()
        result = lifecycle.run("start")
        assert time.monotonic() - began < 20  # fails fast, not after the 30 s start-up timeout
        assert result.code == 1
        assert f"held by PID {os.getpid()}" in result.err
    # A server that does not serve its own port: the probe says who answers instead.
    lifecycle.script = TESTS / "servers" / "toy_server.py"
    assert lifecycle.run("start").code == 0
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        probe = lifecycle.run("health", "--probe")
    assert probe.code == 4
    assert f"answered by PID {os.getpid()}" in probe.out
    assert "not by this server" in probe.out
    assert lifecycle.run("stop").code == 0


def test_lock_file_deleted_while_running(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start", MCP_SERVER_HEARTBEAT_SECONDS="0.2").code == 0
    pid = lifecycle.pid()
    lifecycle.lock_file.unlink()
    again = lifecycle.run("start")
    assert again.code == 3, again
    assert wait_for(lifecycle.lock_file.exists)
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("start").code == 3
    assert lifecycle.run("stop").code == 0
    assert gone(pid)


def test_cache_root_deleted_while_running(lifecycle: Lifecycle) -> None:
    import shutil

    assert lifecycle.run("start", MCP_SERVER_HEARTBEAT_SECONDS="0.2").code == 0
    pid = lifecycle.pid()
    shutil.rmtree(lifecycle.cache_root)
    status = lifecycle.run("status")
    assert status.code in (0, 4), status
    assert lifecycle.run("start").code == 3
    assert wait_for(lambda: lifecycle.pid_file.exists() and lifecycle.lock_file.exists())
    assert wait_for(lambda: lifecycle.run("status").code == 0, interval=CLI_POLL)
    assert lifecycle.run("stop").code == 0
    assert gone(pid)


def test_a_call_in_flight_completes_before_the_server_exits(lifecycle: Lifecycle) -> None:
    lifecycle.script = TESTS / "servers" / "slow_mcp.py"
    mark = lifecycle.marks / "in-flight"
    # The server drains for at most half its stop timeout: 7.5 s, room for the 3 s call.
    lifecycle.set_env(
        MCP_SERVER_PORT=str(free_port()),
        SLOW_MARK=str(mark),
        MCP_SERVER_STOP_TIMEOUT_SECONDS="15",
    )
    started = lifecycle.run("start", "--json")
    assert started.code == 0, started.err
    url = started.json()["url"]
    answers: list[str] = []
    errors: list[BaseException] = []

    async def call() -> None:
        # The plain SDK client, no workaround: after the answer it sends tools/list on the
        # same session to check the result, which the draining server must still serve.
        async with lifecycle.client(url) as client:
            result = await client.call_tool("slow_echo", {"text": "hello", "seconds": 3})
            answers.append(result.content[0].text)

    def run_call() -> None:
        try:
            anyio.run(call)
        except BaseException as exc:
            errors.append(exc)

    async def new_session() -> None:
        async with lifecycle.client(url) as client:
            await client.list_tools()

    caller = threading.Thread(target=run_call)
    caller.start()
    assert wait_for(mark.exists, timeout=15)  # the call is in flight
    stopping = lifecycle.popen("stop", "--json", "--timeout", "15")
    assert wait_for(lambda: lifecycle.snapshot()["state"] == "stopping", timeout=5)
    refused: list[BaseException] = []
    try:
        anyio.run(new_session)
    except BaseException as exc:
        refused.append(exc)
    assert refused, "a new session was accepted while the server drained"
    # A load balancer asking the draining server is told to send nothing more.
    with pytest.raises(urllib.error.HTTPError) as not_ready:
        urllib.request.urlopen(urljoin(url, "/readyz"), timeout=5)
    assert not_ready.value.code == 503
    out, _ = stopping.communicate(timeout=30)
    caller.join(timeout=20)
    assert not errors, errors
    assert answers == ["hello after 3.0s"]
    assert stopping.returncode == 0
    assert json.loads(out)["forced"] is False


@pytest.mark.skipif(os.getuid() != 0, reason="needs root for a PID namespace")
def test_foreground_as_pid_1_reaps_zombies_and_stops_on_sigterm(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(MCP_SERVER_HEARTBEAT_SECONDS="0.2")
    proc = _in_a_pid_namespace(lifecycle)
    try:
        assert wait_for(lambda: _namespace_init(proc.pid) is not None, timeout=15)
        server = _namespace_init(proc.pid)
        assert server is not None
        assert wait_for(lifecycle.snapshot_file.exists, timeout=15)
        for _ in range(200):  # exec-style probes whose children are orphaned to PID 1
            subprocess.run(
                ["nsenter", "-t", str(server), "-p", "-m", "sh", "-c", "(true &) ; true"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        assert wait_for(lambda: _zombie_children(server) == 0, timeout=20), (
            f"{_zombie_children(server)} zombies left"
        )
        # The server is the init's child; stopped (as by Ctrl-Z), it must still end on SIGTERM.
        child = psutil.Process(server).children()[0]
        child.suspend()
        os.kill(server, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root for a PID namespace")
def test_as_pid_1_the_servers_tools_keep_their_exit_codes(lifecycle: Lifecycle) -> None:
    """PID 1 splits into an init (reaps orphans, forwards signals) and the server, so the
    reaping never takes the exit status a tool's subprocess.run waits for."""
    lifecycle.set_env(MCP_SERVER_HEARTBEAT_SECONDS="0.2", TOY_MODE="exit_codes", TOY_CALLS="40")
    codes = lifecycle.marks / "exit_codes.txt"
    proc = _in_a_pid_namespace(lifecycle)
    try:
        assert wait_for(lambda: _namespace_init(proc.pid) is not None, timeout=15)
        init = _namespace_init(proc.pid)
        assert init is not None
        assert wait_for(lambda: bool(psutil.Process(init).children()), timeout=15)
        server = psutil.Process(init).children()[0]
        assert "--foreground" in server.cmdline()  # the server is the init's child
        deadline = time.monotonic() + 60
        while not codes.exists() and time.monotonic() < deadline:  # orphans all the while
            subprocess.run(
                ["nsenter", "-t", str(init), "-p", "-m", "sh", "-c", "(true &) ; true"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        assert codes.read_text().split() == ["3"] * 40
        assert wait_for(lambda: _zombie_children(init) == 0, timeout=20)
        os.kill(init, signal.SIGTERM)  # forwarded: the server drains and exits 0
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
        assert not server.is_running()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _in_a_pid_namespace(lifecycle: Lifecycle) -> subprocess.Popen[bytes]:
    """`start --foreground` as PID 1 of a new PID namespace, as in a container."""
    return subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", *lifecycle.command("start", "--foreground")],
        env=lifecycle.env,
        cwd=lifecycle.marks,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _namespace_init(unshare_pid: int) -> int | None:
    try:
        children = psutil.Process(unshare_pid).children()
    except psutil.Error:
        return None
    return children[0].pid if children else None


def _zombie_children(pid: int) -> int:
    try:
        return sum(1 for c in psutil.Process(pid).children() if c.status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return 0


def test_a_stop_during_start_is_what_start_reports(lifecycle: Lifecycle) -> None:
    starting = lifecycle.popen("start", TOY_MODE="slow_ready", TOY_READY_DELAY="5")
    try:
        assert wait_for(lifecycle.pid_file.exists, timeout=20)
        stopped = lifecycle.run("stop")
        assert stopped.code == 0, stopped
        _, err = starting.communicate(timeout=30)
    finally:
        if starting.poll() is None:
            starting.kill()
            starting.wait()
    assert starting.returncode == 1
    assert "told to stop (SIGTERM or SIGINT) before it was ready" in err
    assert "exited with code" not in err
    assert lifecycle.run("status").code == 2
