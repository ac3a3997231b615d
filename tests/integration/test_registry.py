"""A running server stays reachable by name: from any directory, with the cache root its own
settings gave it, after its settings broke, from a deleted working directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import Lifecycle, gone, wait_for

TOOL = shutil.which("mcp-lifecycle") or str(Path(sys.executable).parent / "mcp-lifecycle")


def _unpinned(lifecycle: Lifecycle, tmp_path: Path) -> Path:
    """The server's cache root comes from its settings file, not from the environment."""
    lifecycle.env.pop("MCP_SERVER_CACHE_ROOT")
    lifecycle.set_env(XDG_STATE_HOME=str(tmp_path / "state"))
    settings = lifecycle.marks / "settings"
    settings.mkdir()
    (settings / "toy.yaml").write_text(f"cache_root: {lifecycle.cache_root}\n")
    return settings


def test_found_by_name_from_another_directory(lifecycle: Lifecycle, tmp_path: Path) -> None:
    _unpinned(lifecycle, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    try:
        status = lifecycle.run("status", "--json", cwd=elsewhere)
        assert status.code == 0, status
        assert status.json()["pid"] == pid
        assert lifecycle.run("health", cwd=elsewhere).code == 0
        assert lifecycle.run("logs", "--lines", "1", cwd=elsewhere).code == 0
        assert lifecycle.run("reload", cwd=elsewhere).code == 0
        listed = subprocess.run(
            [TOOL, "ls", "--json"], env=lifecycle.env, capture_output=True, text=True,
            check=False, cwd=elsewhere,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        entries = json.loads(listed.stdout)
        assert [(e["server"], e["pid"], e["cache_root"]) for e in entries] == [
            ("toy", pid, str(lifecycle.cache_root))
        ]
    finally:
        assert lifecycle.run("stop", cwd=elsewhere).code == 0
    assert gone(pid)
    assert lifecycle.run("status", cwd=elsewhere).code == 2


def test_broken_settings_warn_but_never_strand_a_running_server(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    settings = _unpinned(lifecycle, tmp_path)
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    # A typo after start, in the server's own file (after the cache_root line).
    with (settings / "toy.yaml").open("a") as handle:
        handle.write("health_ttl_secnds: 5\n")
    status = lifecycle.run("status")
    assert status.code == 0, status
    assert "Warning: unknown setting 'health_ttl_secnds'" in status.err
    assert f"(PID {pid})" in status.err
    stop = lifecycle.run("stop")
    assert stop.code == 0, stop
    assert gone(pid)
    # Nothing runs now: the broken settings are an error again.
    assert lifecycle.run("status").code == 5


def test_a_deleted_working_directory_breaks_nothing(lifecycle: Lifecycle, tmp_path: Path) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    address = str(tmp_path / "notify.sock")
    config = tmp_path / "toy.yaml"
    config.write_text("log_level: INFO\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(10)
        proc = subprocess.Popen(
            lifecycle.command("start", "--foreground"),
            cwd=doomed,
            env={**lifecycle.env, "NOTIFY_SOCKET": address, "TOY_CONFIG_FILE": str(config)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert sock.recv(100) == b"READY=1"
            shutil.rmtree(doomed)
            os.kill(proc.pid, signal.SIGHUP)  # reload with no working directory
            seen = [sock.recv(100).decode()]
            while seen[-1] != "READY=1":
                seen.append(sock.recv(100).decode())
            assert seen[0] == "RELOADING=1"
            for command in ("status", "health"):
                gone_too = tmp_path / f"gone-{command}"
                gone_too.mkdir()
                in_a_deleted_directory = ["sh", "-c", 'cd "$1" && rmdir "$1" && shift && exec "$@"']
                result = subprocess.run(
                    [*in_a_deleted_directory, "sh", str(gone_too), *lifecycle.command(command)],
                    env=lifecycle.env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                assert result.returncode == 0, result.stderr
                assert not gone_too.exists()
            assert wait_for(lambda: lifecycle.snapshot()["reload_attempts"] == 1)
            assert lifecycle.snapshot()["last_reload_error"] is None
            # A reload that fails (settings that do not parse) still ends on READY=1: systemd
            # would otherwise wait on RELOADING=1 until its timeout.
            config.write_text("log_level: [unclosed\n")
            os.kill(proc.pid, signal.SIGHUP)
            seen = [sock.recv(100).decode()]
            while seen[-1] != "READY=1":
                seen.append(sock.recv(100).decode())
            assert seen[0] == "RELOADING=1"
            assert wait_for(lambda: lifecycle.snapshot()["reload_attempts"] == 2)
            assert lifecycle.snapshot()["last_reload_error"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_project_never_acts_on_another_projects_server(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    """Two projects, one server name, each cache root in its own settings file: `stop` in one
    must not stop the other's server just because nothing runs in its own cache root."""
    _unpinned(lifecycle, tmp_path)  # project B: lifecycle.marks, its server started below
    project_a = tmp_path / "project-a"
    (project_a / "settings").mkdir(parents=True)
    (project_a / "settings" / "toy.yaml").write_text(f"cache_root: {tmp_path / 'cache-a'}\n")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    try:
        assert lifecycle.run("status", cwd=project_a).code == 2
        assert lifecycle.run("stop", cwd=project_a).code == 2
        assert not gone(pid)
        assert lifecycle.run("status").code == 0
    finally:
        assert lifecycle.run("stop").code == 0
