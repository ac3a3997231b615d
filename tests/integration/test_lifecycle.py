"""The lifecycle end to end: real server processes, real signals, real files."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

from tests.conftest import CLI_POLL, Lifecycle, gone, wait_for


def test_start_status_stop_happy_path(lifecycle: Lifecycle) -> None:
    started = lifecycle.run("start")
    assert started.code == 0, started.err
    pid = lifecycle.pid()
    assert f"PID {pid}" in started.out
    assert "ready" in started.out

    assert stat.S_IMODE(lifecycle.cache_root.stat().st_mode) == 0o700
    for path in (lifecycle.pid_file, lifecycle.snapshot_file, lifecycle.lock_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    snapshot = lifecycle.snapshot()
    assert snapshot["state"] == "ready"
    assert snapshot["pid"] == pid
    assert snapshot["orchestrator_pid"] == pid
    assert snapshot["watchers_running"] is True
    for key in (
        "updated_at",
        "remote_enabled",
        "last_remote_sync_at",
        "last_remote_error",
        "lifecycle_state",
        "activity_state",
        "started_at",
        "server_name",
    ):
        assert key in snapshot

    # The server runs detached: its own session, stdin from /dev/null.
    proc = psutil.Process(pid)
    assert os.getsid(pid) == pid
    assert proc.ppid() != os.getpid()

    status = lifecycle.run("status", "--json")
    assert status.code == 0, status.err
    data = status.json()
    assert data["pid"] == pid
    assert data["state"] == "ready"
    assert data["snapshot_age_seconds"] < 10
    assert data["running"] is True

    stopped = lifecycle.run("stop")
    assert stopped.code == 0, stopped.err
    assert gone(pid)
    assert not lifecycle.pid_file.exists()
    assert lifecycle.lock_file.exists(), "the lock file must never be deleted"
    final = lifecycle.snapshot()
    assert final["state"] == "stopped"
    assert final["watchers_running"] is False

    assert lifecycle.run("status").code == 2


def test_double_start_exits_3(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    again = lifecycle.run("start")
    assert again.code == 3
    assert "already running" in again.err
    assert lifecycle.pid() == pid
    foreground = lifecycle.run("start", "--foreground")
    assert foreground.code == 3
    assert lifecycle.run("stop").code == 0


@pytest.mark.repetitive
def test_concurrent_starts_yield_one_server(lifecycle: Lifecycle) -> None:
    procs = [lifecycle.popen("start") for _ in range(8)]
    codes = []
    for proc in procs:
        proc.communicate(timeout=60)
        codes.append(proc.returncode)
    assert sorted(codes) == [0] + [3] * 7, codes
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0


def test_stop_when_not_running_exits_2(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("stop")
    assert result.code == 2
    assert "not running" in result.err


def test_restart_starts_a_stopped_server_and_replaces_a_running_one(lifecycle: Lifecycle) -> None:
    first = lifecycle.run("restart")
    assert first.code == 0, first.err
    old = lifecycle.pid()
    second = lifecycle.run("restart", "--json")
    assert second.code == 0, second.err
    assert second.json()["stopped"]["pid"] == old
    new = lifecycle.pid()
    assert second.json()["started"]["pid"] == new
    assert new != old
    assert gone(old)
    assert lifecycle.run("stop").code == 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_pid_file_is_cleaned_by_default(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text(f"{_dead_pid()}\n")
    assert lifecycle.run("status").code == 8
    started = lifecycle.run("start")
    assert started.code == 0, started.err
    assert "stale PID file" in started.out
    assert lifecycle.run("stop").code == 0


def test_stale_pid_file_refused_when_configured(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    dead = _dead_pid()
    lifecycle.pid_file.write_text(f"{dead}\n")
    refused = lifecycle.run("start", MCP_SERVER_STALE_PID_ACTION="refuse")
    assert refused.code == 8
    assert lifecycle.pid_file.read_text().strip() == str(dead)
    forced = lifecycle.run("start", "--force", MCP_SERVER_STALE_PID_ACTION="refuse")
    assert forced.code == 0, forced.err
    assert lifecycle.run("stop").code == 0


def test_stop_with_stale_pid_file_exits_8_and_removes_it(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text(f"{_dead_pid()}\n")
    result = lifecycle.run("stop")
    assert result.code == 8
    assert not lifecycle.pid_file.exists()


def test_pid_file_naming_an_unrelated_process_is_never_signalled(
    lifecycle: Lifecycle, spawn: object
) -> None:
    stranger = spawn([sys.executable, "-c", "import time; time.sleep(120)"])  # type: ignore[operator]
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text(f"{stranger.pid}\n")
    status = lifecycle.run("status")
    assert status.code == 8
    assert "not this server" in status.out
    stop = lifecycle.run("stop")
    assert stop.code == 8
    time.sleep(0.2)
    assert stranger.poll() is None, "a stranger was signalled"


def test_impostor_with_server_name_in_command_line_is_never_signalled(
    lifecycle: Lifecycle, spawn: object
) -> None:
    # Like an editor open on the server's log: it has the name in its command line and started
    # before the PID file was written.
    impostor = spawn(  # type: ignore[operator]
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            "toy",
            "start",
            "--foreground",
            str(lifecycle.log_file),
        ]
    )
    time.sleep(0.1)
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_text(f"{impostor.pid}\n")
    assert lifecycle.run("status").code == 8
    stop = lifecycle.run("stop")
    assert stop.code == 8
    assert "nothing was signalled" in stop.err
    time.sleep(0.2)
    assert impostor.poll() is None, "the impostor was signalled"
    started = lifecycle.run("start")
    assert started.code == 0, started.err
    assert impostor.poll() is None
    assert lifecycle.run("stop").code == 0
    assert impostor.poll() is None


@pytest.mark.parametrize("content", [b"abc", b"", b"-5", b"0", b"\x00\xff", b"12 34"])
def test_corrupt_pid_file_never_produces_a_traceback(lifecycle: Lifecycle, content: bytes) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    lifecycle.pid_file.write_bytes(content)
    status = lifecycle.run("status")
    assert status.code == 8
    assert lifecycle.run("health").code == 8
    started = lifecycle.run("start")
    assert started.code == 0, started.err
    assert lifecycle.run("stop").code == 0


def test_corrupt_snapshot_is_reported_and_rewritten(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start", MCP_SERVER_HEARTBEAT_SECONDS="0.2").code == 0
    lifecycle.snapshot_file.write_text('{"state": "ready", "updated_at": ')  # half-written
    status = lifecycle.run("status")
    assert status.code in (0, 4)
    assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=5, interval=CLI_POLL)
    assert lifecycle.snapshot()["state"] == "ready"
    assert lifecycle.run("stop").code == 0


def test_insecure_cache_root_is_refused(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    os.chmod(lifecycle.cache_root, 0o777)
    for command in ("start", "status", "stop"):
        result = lifecycle.run(command)
        assert result.code == 6, (command, result)
        assert "writable by others" in result.err
    assert not lifecycle.pid_file.exists()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give the folder away")
def test_cache_root_owned_by_someone_else_is_refused(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    os.chown(lifecycle.cache_root, 65534, 65534)
    result = lifecycle.run("start")
    assert result.code == 6
    assert "owned by uid 65534" in result.err


def test_symlinked_pid_file_is_refused(lifecycle: Lifecycle) -> None:
    lifecycle.cache_root.mkdir(mode=0o700)
    target = lifecycle.marks / "elsewhere"
    target.write_text("precious\n")
    lifecycle.pid_file.symlink_to(target)
    assert lifecycle.run("status").code == 6
    assert lifecycle.run("start").code == 6
    assert target.read_text() == "precious\n"


def test_sigterm_drains_and_cleans_up(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: gone(pid))
    assert wait_for(lambda: not lifecycle.pid_file.exists())
    snapshot = lifecycle.snapshot()
    assert snapshot["state"] == "stopped"
    assert snapshot["watchers_running"] is False
    assert "stopped" in lifecycle.log_file.read_text()
    assert lifecycle.run("status").code == 2


def test_sigint_behaves_like_sigterm(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    os.kill(pid, signal.SIGINT)
    assert wait_for(lambda: gone(pid))
    assert wait_for(lambda: not lifecycle.pid_file.exists())
    assert lifecycle.snapshot()["state"] == "stopped"


def test_sighup_reloads_settings_and_records_it(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    assert lifecycle.snapshot()["last_reload_at"] is None
    settings = lifecycle.marks / "settings"
    settings.mkdir()
    (settings / "toy.yaml").write_text("log_level: DEBUG\n")
    os.kill(pid, signal.SIGHUP)
    reloads = lifecycle.marks / "reloads.txt"
    assert wait_for(lambda: reloads.exists() and "DEBUG" in reloads.read_text())
    assert wait_for(lambda: lifecycle.snapshot()["last_reload_at"] is not None)
    # A bad config is logged and the old one kept; the server stays up.
    (settings / "toy.yaml").write_text("stale_pid_action: sometimes\n")
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in lifecycle.log_file.read_text())
    assert not gone(pid)
    # The CLI reads the same bad file, but a running server is never stranded by it.
    status = lifecycle.run("status")
    assert status.code == 0, status
    assert "Warning: invalid setting stale_pid_action='sometimes'" in status.err
    (settings / "toy.yaml").write_text("log_level: INFO\n")
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0


def test_server_ignoring_sigterm_is_killed_after_the_timeout(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="ignore_term")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    result = lifecycle.run("stop", "--timeout", "1", "--json")
    assert result.code == 0, result.err
    assert result.json()["forced"] is True
    # The stop's own clock, from its SIGTERM to the process gone: the 1 s asked for, not the
    # default 10 s (the CLI's start-up before it, slow on a loaded machine, is not counted).
    assert 1 <= result.json()["seconds"] < 1 + 3
    assert gone(pid)
    assert not lifecycle.pid_file.exists()
    assert lifecycle.run("status").code == 2


def test_no_kill_leaves_a_hung_server_and_exits_7(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="hang_on_stop")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    result = lifecycle.run("stop", "--timeout", "0.5", "--no-kill")
    assert result.code == 7
    assert not gone(pid)
    assert lifecycle.pid_file.exists()
    assert lifecycle.run("stop", "--timeout", "0.5").code == 0
    assert gone(pid)


def test_server_crashing_at_start(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="crash")
    result = lifecycle.run("start")
    assert result.code == 1
    assert "boom: the database is unreachable" in result.err
    assert "Last lines of the server log" in result.err
    assert not lifecycle.pid_file.exists()
    assert lifecycle.run("status").code == 2
    assert lifecycle.snapshot()["state"] == "failed"
    as_json = lifecycle.run("start", "--json")
    assert as_json.code == 1
    assert "boom" in as_json.json()["log_tail"]


def test_server_returning_before_ready(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="exit_early")
    result = lifecycle.run("start")
    assert result.code == 1
    assert "before the server was ready" in result.err
    assert not lifecycle.pid_file.exists()


def test_server_never_ready_times_out_and_is_stopped(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="never_ready")
    began = time.monotonic()
    result = lifecycle.run("start", "--timeout", "1")
    assert time.monotonic() - began < 1 + 14  # not the default 30 s; slack for a loaded machine
    assert result.code == 7
    assert "not ready within 1s" in result.err
    assert not lifecycle.pid_file.exists()
    assert lifecycle.run("status").code == 2


@pytest.mark.parametrize("mode", ["child", "child_ignores_term"])
def test_stop_takes_the_servers_children_too(lifecycle: Lifecycle, mode: str) -> None:
    lifecycle.set_env(TOY_MODE=mode)
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    child = int((lifecycle.marks / "child.pid").read_text())
    assert psutil.Process(child).ppid() == pid
    result = lifecycle.run("stop", "--timeout", "1.5")
    assert result.code == 0, result.err
    assert gone(pid)
    assert wait_for(lambda: gone(child), timeout=3)


def test_stop_handler_is_used_instead_of_sigterm(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_STOP_HANDLER="1")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    assert lifecycle.run("stop").code == 0
    assert (lifecycle.marks / "stop_handler.txt").read_text() == str(pid)
    assert gone(pid)


def test_status_from_another_working_directory_with_default_cache_root(
    lifecycle: Lifecycle, tmp_path: object
) -> None:
    state_home = lifecycle.marks / "state"
    env = {k: v for k, v in lifecycle.env.items() if k != "MCP_SERVER_CACHE_ROOT"}
    env["XDG_STATE_HOME"] = str(state_home)
    lifecycle.env = env
    one = lifecycle.marks / "one"
    two = lifecycle.marks / "two"
    one.mkdir()
    two.mkdir()
    assert lifecycle.run("start", cwd=one).code == 0
    status = lifecycle.run("status", "--json", cwd=two)
    assert status.code == 0
    assert status.json()["cache_root"].startswith(str(state_home))
    assert lifecycle.run("stop", cwd=two).code == 0


def test_health_reports_probes_and_fails_on_a_failing_one(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start").code == 0
    healthy = lifecycle.run("health", "--probe", "--json")
    assert healthy.code == 0, healthy.out
    names = [check["name"] for check in healthy.json()["checks"]]
    assert names == ["process", "always-ok"]
    failing = lifecycle.run("health", "--probe", TOY_FAILING_PROBE="1")
    assert failing.code == 4
    assert "disk is full" in failing.out
    # The recorded result is shown by a later plain `health`.
    later = lifecycle.run("health")
    assert later.code == 4
    assert "disk is full" in later.out
    assert lifecycle.run("stop").code == 0
    assert lifecycle.run("health").code == 2


def test_stale_snapshot_makes_status_exit_4(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(MCP_SERVER_HEALTH_TTL_SECONDS="1", MCP_SERVER_HEARTBEAT_SECONDS="0.5")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    os.kill(pid, signal.SIGSTOP)  # a hung server: alive, but its heartbeat stops
    try:
        assert wait_for(lambda: lifecycle.run("status").code == 4, timeout=5, interval=CLI_POLL)
        result = lifecycle.run("status")
        assert "stale" in result.out
        assert lifecycle.run("health").code == 4
    finally:
        os.kill(pid, signal.SIGCONT)
    assert lifecycle.run("stop").code == 0


def test_foreground_start_runs_in_this_process_and_stops_on_sigterm(lifecycle: Lifecycle) -> None:
    with lifecycle.foreground() as proc:
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=15, interval=CLI_POLL)
        assert lifecycle.pid() == proc.pid
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert not lifecycle.pid_file.exists()


def test_launch_as_python_dash_m(lifecycle: Lifecycle) -> None:
    lifecycle.launcher = [sys.executable, "-m", "tests.servers.toy_server"]
    project = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    # Added to, not replaced: in the portable pass, PYTHONPATH carries tests/portable.
    kept = lifecycle.env.get("PYTHONPATH")
    lifecycle.set_env(PYTHONPATH=os.pathsep.join([project, kept] if kept else [project]))
    started = lifecycle.run("start")
    assert started.code == 0, started.err
    cmdline = psutil.Process(lifecycle.pid()).cmdline()
    assert cmdline[1:3] == ["-m", "tests.servers.toy_server"]
    assert lifecycle.run("stop").code == 0


def test_usage_errors_exit_5_not_2(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("start", "--bogus").code == 5
    assert lifecycle.run("stop", "--timeout", "soon").code == 5
    assert lifecycle.run("no-such-command").code == 5
    assert lifecycle.run("--log-level", "LOUD", "status").code == 5


def test_help_teaches(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("--help")
    assert result.code == 0
    for command in ("start", "stop", "restart", "status", "health"):
        assert command in result.out
    assert "Exit codes" in result.out
    assert "Example" in lifecycle.run("stop", "--help").out


@pytest.mark.repetitive
def test_concurrent_status_during_start_and_stop(lifecycle: Lifecycle) -> None:
    def statuses() -> list[int]:
        return [lifecycle.run("status").code for _ in range(5)]

    with ThreadPoolExecutor(max_workers=3) as pool:
        starting = pool.submit(lifecycle.run, "start")
        seen = pool.submit(statuses)
        assert starting.result().code == 0
        assert set(seen.result()) <= {0, 2, 4}
        stopping = pool.submit(lifecycle.run, "stop")
        seen = pool.submit(statuses)
        assert stopping.result().code == 0
        assert set(seen.result()) <= {0, 2, 4}


def test_a_server_between_its_lock_and_its_first_snapshot_is_starting(
    lifecycle: Lifecycle, spawn: Any
) -> None:
    """The first instant of a start, held still: the lock taken, its record written, no
    snapshot yet. `status` says starting (0), `health` says not ready (4), never stale."""
    lifecycle.cache_root.mkdir(mode=0o700)
    holder = spawn(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pathlib import Path\n"
         "from mcp_lifecycle.files.pidfile import ServerLock\n"
         "assert ServerLock(Path(sys.argv[1])).acquire()\n"
         "print('locked', flush=True)\n"
         "time.sleep(60)\n",
         str(lifecycle.lock_file)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    status = lifecycle.run("status", "--json")
    assert status.code == 0, status
    assert status.json()["state"] == "starting"
    assert status.json()["pid"] == holder.pid
    assert status.json()["snapshot_age_seconds"] is None
    assert "starting" in lifecycle.run("status").out
    health = lifecycle.run("health", "--json")
    assert health.code == 4
    assert health.json()["state"] == "starting"
    assert lifecycle.run("start").code == 3


def test_a_failed_probe_ages_out_like_the_snapshot(lifecycle: Lifecycle) -> None:
    from mcp_lifecycle.files.snapshot import RuntimeHealthSnapshot, update_runtime_health

    lifecycle.set_env(MCP_SERVER_HEALTH_TTL_SECONDS="2", MCP_SERVER_HEARTBEAT_SECONDS="0.5")
    assert lifecycle.run("start").code == 0
    try:
        assert lifecycle.run("health", "--probe", TOY_FAILING_PROBE="1").code == 4
        assert lifecycle.run("health").code == 4  # the failed probe counts...
        time.sleep(2.5)
        assert lifecycle.run("health").code == 0  # ...for one TTL, then ages out

        assert lifecycle.run("health", "--probe", TOY_FAILING_PROBE="1").code == 4

        def wall_clock_stepped_back(snapshot: RuntimeHealthSnapshot) -> None:
            assert snapshot.probe is not None
            snapshot.probe["checked_epoch"] = time.time() + 3600  # written "in the future"
            snapshot.probe["checked_monotonic"] = time.monotonic() - 10  # but 10 s ago

        update_runtime_health(lifecycle.snapshot_file, wall_clock_stepped_back)
        assert lifecycle.run("health").code == 0

        def no_monotonic(snapshot: RuntimeHealthSnapshot) -> None:
            assert snapshot.probe is not None
            del snapshot.probe["checked_monotonic"]

        update_runtime_health(lifecycle.snapshot_file, no_monotonic)
        assert lifecycle.run("health").code == 0  # from the future: not trusted
    finally:
        assert lifecycle.run("stop").code == 0
