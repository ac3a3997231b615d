"""Configuration layers end to end, and the operator's commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Lifecycle, free_port, wait_for


def _settings_dir(lifecycle: Lifecycle) -> Any:
    path = lifecycle.marks / "settings"
    path.mkdir(exist_ok=True)
    return path


def test_config_names_the_source_of_every_value(lifecycle: Lifecycle) -> None:
    settings = _settings_dir(lifecycle)
    (settings / "toy.yaml").write_text(
        "# defaults for toy\nhost: 127.0.0.2\nprobe_timeout_seconds: 3\n"
    )
    (settings / "local.yaml").write_text("probe_timeout_seconds: 4\n")
    result = lifecycle.run("--port", "9001", "config", "--json", MCP_SERVER_LOG_LEVEL="debug")
    assert result.code == 0, result.err
    rows = result.json()["settings"]
    assert rows["port"] == {"value": 9001, "source": "flag", "from": "flag --port"}
    assert rows["log_level"]["value"] == "DEBUG"
    assert rows["log_level"]["from"] == "environment variable MCP_SERVER_LOG_LEVEL"
    assert rows["probe_timeout_seconds"]["value"] == 4
    assert rows["probe_timeout_seconds"]["from"] == "settings/local.yaml line 1"
    assert rows["host"]["from"] == "settings/toy.yaml line 2"
    assert rows["stale_pid_action"]["source"] == "default"
    assert rows["heartbeat_seconds"]["effective"] == 2.5  # a quarter of the TTL of 10
    text = lifecycle.run("config")
    assert "# settings/toy.yaml line 2" in text.out


def test_bad_values_exit_5_with_one_line_and_touch_nothing(lifecycle: Lifecycle) -> None:
    settings = _settings_dir(lifecycle)
    (settings / "toy.yaml").write_text("probe_timeout_seconds: -1\n")
    before = {p.name: p.read_bytes() for p in settings.iterdir()}
    for command in ("start", "stop", "status", "health", "config", "restart"):
        result = lifecycle.run(command)
        assert result.code == 5, (command, result)
        first = result.err.splitlines()[0]
        assert "probe_timeout_seconds=-1 from settings/toy.yaml line 1" in first
    assert {p.name: p.read_bytes() for p in settings.iterdir()} == before
    assert not lifecycle.cache_root.exists(), "nothing is created from a bad configuration"
    broken = lifecycle.run("status", MCP_SERVER_PORT="eighty")
    assert broken.code == 5


def test_unknown_yaml_key_suggests_the_closest(lifecycle: Lifecycle) -> None:
    (_settings_dir(lifecycle) / "toy.yaml").write_text("heartbeat_second: 1\n")
    result = lifecycle.run("status")
    assert result.code == 5
    assert "unknown setting 'heartbeat_second' in settings/toy.yaml line 1" in result.err
    assert "did you mean 'heartbeat_seconds'?" in result.err


def test_the_shared_local_yaml_may_hold_other_servers_settings(lifecycle: Lifecycle) -> None:
    """settings/local.yaml serves every server started in the folder: a key of another
    server's only warns here (as would a typo, with the closest name)."""
    (_settings_dir(lifecycle) / "local.yaml").write_text(
        "greeting: bonjour\nheartbeat_second: 1\nlog_level: DEBUG\n"
    )
    result = lifecycle.run("config", "--json")
    assert result.code == 0, result
    assert result.json()["settings"]["log_level"]["value"] == "DEBUG"
    assert "settings/local.yaml line 1: 'greeting' is not a setting of toy" in result.err
    assert "did you mean 'heartbeat_seconds'" in result.err


def test_broken_yaml_names_file_and_line(lifecycle: Lifecycle) -> None:
    (_settings_dir(lifecycle) / "toy.yaml").write_text("port: 1\nhost: 'unclosed\n")
    result = lifecycle.run("status")
    assert result.code == 5
    assert "settings/toy.yaml line" in result.err
    assert "not valid YAML" in result.err


def test_set_flag_rejects_garbage(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("--set", "no-equals-sign", "status").code == 5
    unknown = lifecycle.run("--set", "colour=blue", "status")
    assert unknown.code == 5
    assert "unknown setting 'colour' in flag --set colour" in unknown.err


def test_detached_server_runs_on_the_settings_start_resolved(lifecycle: Lifecycle) -> None:
    port = free_port()
    result = lifecycle.run("--port", str(port), "--set", "probe_timeout_seconds=7", "-v", "start")
    assert result.code == 0, result.err
    seen = json.loads((lifecycle.marks / "settings.json").read_text())
    assert seen["port"] == port
    assert seen["probe_timeout_seconds"] == 7
    assert seen["log_level"] == "DEBUG"
    # A reload keeps the flags: they are still the highest layer.
    (_settings_dir(lifecycle) / "toy.yaml").write_text(
        "probe_timeout_seconds: 9\nlog_level: INFO\n"
    )
    os.kill(lifecycle.pid(), signal.SIGHUP)
    reloads = lifecycle.marks / "reloads.txt"
    assert wait_for(reloads.exists)
    assert reloads.read_text().strip() == "DEBUG"
    assert lifecycle.run("stop").code == 0


def test_json_logs_carry_the_server_name(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("--json-logs", "start").code == 0
    assert lifecycle.run("stop").code == 0
    records = [json.loads(line) for line in lifecycle.log_file.read_text().splitlines()]
    assert records
    assert {record["server"] for record in records} == {"toy"}
    assert any(record["message"].startswith("starting toy") for record in records)


def test_detached_log_rotates_with_prints_and_logging(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="chatty", TOY_LINES="400")
    assert (
        lifecycle.run(
            "start", MCP_SERVER_LOG_MAX_BYTES="4096", MCP_SERVER_LOG_BACKUP_COUNT="50"
        ).code
        == 0
    )
    assert lifecycle.run("stop").code == 0
    files = sorted(lifecycle.cache_root.glob("toy.log*"))
    assert len(files) > 5
    text = "".join(path.read_text() for path in files)
    for index in range(400):
        assert f"line {index:05d}" in text
        assert f"print {index:05d}" in text
    assert all(path.stat().st_size < 4096 * 2 for path in files)


def test_doctor_on_a_clean_machine_and_with_problems(lifecycle: Lifecycle, spawn: Any) -> None:
    port = free_port()
    clean = lifecycle.run("--port", str(port), "doctor", "--json")
    assert clean.code == 0, clean.out
    checks = {c["check"]: c for c in clean.json()["checks"]}
    assert {"settings", "cache root", "port", "server log", "dependencies"} <= set(checks)
    assert checks["port"]["level"] == "ok"

    assert lifecycle.run("--port", str(port), "start").code == 0
    running = lifecycle.run("--port", str(port), "doctor", "--json").json()
    assert {c["check"]: c["level"] for c in running["checks"]}["PID file"] == "ok"
    assert lifecycle.run("stop").code == 0

    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        busy = lifecycle.run("--port", str(port), "doctor")
    assert busy.code == 1
    assert f"127.0.0.1:{port} is in use by PID {os.getpid()}" in busy.out
    assert "fix: stop it, or choose another port" in busy.out

    lifecycle.pid_file.write_text("999999\n")
    stale = lifecycle.run("doctor", "--json").json()
    assert {c["check"]: c["level"] for c in stale["checks"]}["PID file"] == "warn"

    os.chmod(lifecycle.cache_root, 0o777)
    insecure = lifecycle.run("doctor")
    assert insecure.code == 1
    assert "writable by others" in insecure.out
    os.chmod(lifecycle.cache_root, 0o700)

    (_settings_dir(lifecycle) / "toy.yaml").write_text("port: 0\n")
    invalid = lifecycle.run("doctor", "--json")
    assert invalid.code == 1
    assert invalid.json()["checks"][0]["level"] == "error"


def test_version(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("version", "--json")
    assert result.code == 0
    data = result.json()
    assert data["mcp_lifecycle"] == "0.1.0"
    assert data["mcp_sdk"].startswith("2.")
    assert data["python"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert "mcp-lifecycle 0.1.0" in lifecycle.run("version").out


def test_logs_shows_the_tail(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("logs").code == 2
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("stop").code == 0
    result = lifecycle.run("logs", "--lines", "1")
    assert result.code == 0
    assert result.out.strip().endswith("toy stopped")
    assert len(result.out.strip().splitlines()) == 1


def test_no_backups_means_the_log_starts_again_never_grows(lifecycle: Lifecycle) -> None:
    extra = lifecycle.marks / "extra.log"
    started = lifecycle.run(
        "start",
        TOY_MODE="chatty",
        TOY_LINES="400",
        MCP_SERVER_LOG_FILE=str(extra),
        MCP_SERVER_LOG_MAX_BYTES="4096",
        MCP_SERVER_LOG_BACKUP_COUNT="0",
    )
    assert started.code == 0, started
    try:
        for path in (lifecycle.log_file, extra):
            # 400 lines of ~100 bytes went through each; one line may overshoot the limit.
            assert 0 < path.stat().st_size <= 4096 + 512, path
            assert not list(path.parent.glob(f"{path.name}.*")), "no backups with 0"
        assert "line 00399" in extra.read_text()  # the newest lines are kept
    finally:
        assert lifecycle.run("stop").code == 0


def test_global_options_before_or_after_the_command(lifecycle: Lifecycle, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    assert lifecycle.run("start", "--cache-root", str(elsewhere)).code == 0
    try:
        assert lifecycle.run("status").code == 2  # the environment's cache root: nothing there
        for args in (
            ["status", "--cache-root", str(elsewhere)],
            [f"--cache-root={elsewhere}", "status", "--json"],
            ["status", "--json", f"--cache-root={elsewhere}", "-v"],
            ["health", "--set", f"cache_root={elsewhere}"],
        ):
            result = lifecycle.run(*args)
            assert result.code == 0, (args, result)
    finally:
        assert lifecycle.run("stop", "--cache-root", str(elsewhere)).code == 0
    assert lifecycle.run("service", "systemd", "--port", "9001").out.count("--set=port=9001") == 1


def test_a_commands_own_option_wins_and_load_settings_sees_the_global_flags(
    lifecycle: Lifecycle,
) -> None:
    assert lifecycle.run("show-port").out.strip() == "own 0, setting None"
    assert lifecycle.run("show-port", "--port", "7").out.strip() == "own 7, setting None"
    both = lifecycle.run("--port", "9001", "show-port", "--port", "7")
    assert both.out.strip() == "own 7, setting 9001"
    flags = lifecycle.run("show-port", "--set", "port=9002")
    assert flags.out.strip() == "own 0, setting 9002"


def _on_a_terminal(lifecycle: Lifecycle, *args: str, **env: str) -> str:
    """Run the CLI with a pseudo-terminal as stdout, as a person would see it."""
    import pty
    import subprocess

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            lifecycle.command(*args),
            stdout=follower,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            env={**lifecycle.env, **env},
            timeout=60,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.returncode == 0
        return b"".join(chunks).decode()
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)


def test_no_color_is_honoured_on_a_terminal(lifecycle: Lifecycle) -> None:
    env = {k: v for k, v in lifecycle.env.items() if k != "NO_COLOR"}
    lifecycle.env = env
    assert "\x1b[" in _on_a_terminal(lifecycle, "doctor")
    plain = _on_a_terminal(lifecycle, "doctor", NO_COLOR="1")
    assert "\x1b[" not in plain
    assert "[ok   ] settings" in plain


def test_no_arguments_print_help_and_succeed(lifecycle: Lifecycle) -> None:
    for args in ((), ("service",)):
        result = lifecycle.run(*args)
        assert result.code == 0, result
        assert "Usage:" in result.out


def test_reload_applies_or_says_the_old_settings_stay(lifecycle: Lifecycle, tmp_path: Path) -> None:
    assert lifecycle.run("reload").code == 2
    assert lifecycle.run("start").code == 0
    try:
        applied = lifecycle.run("reload", "--json")
        assert applied.code == 0, applied
        assert applied.json()["pid"] == lifecycle.pid()
        assert applied.json()["reloaded_at"] == lifecycle.snapshot()["last_reload_at"]
        assert (lifecycle.marks / "reloads.txt").read_text().splitlines() == ["INFO"]

        # The server reads settings from its own working directory; this CLI runs elsewhere.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        settings_dir = lifecycle.marks / "settings"
        settings_dir.mkdir()
        (settings_dir / "toy.yaml").write_text("log_level: LOUD\n")
        refused = lifecycle.run("reload", cwd=elsewhere)
        assert refused.code == 5, refused
        assert "keeps its previous settings" in refused.err
        assert "log_level" in refused.err
        assert lifecycle.run("status").code == 0

        (settings_dir / "toy.yaml").write_text("log_level: DEBUG\n")
        assert lifecycle.run("reload", cwd=elsewhere).code == 0
        assert (lifecycle.marks / "reloads.txt").read_text().splitlines() == ["INFO", "DEBUG"]
        assert lifecycle.snapshot()["last_reload_error"] is None
    finally:
        assert lifecycle.run("stop").code == 0


def test_a_server_of_its_own_prefix_and_file(lifecycle: Lifecycle) -> None:
    """Two servers in one folder: each has its own variables above the shared MCP_SERVER_*
    ones, and its own settings file."""
    lifecycle.set_env(
        TOY_ENV_PREFIX="TOY_SERVER_",
        MCP_SERVER_PORT="9001",  # what every server in this environment would get
        TOY_SERVER_PORT="9002",  # this one's own
        TOY_CONFIG_FILE="conf/own.yaml",
    )
    settings = _settings_dir(lifecycle)
    (settings / "toy.yaml").write_text("log_level: DEBUG\n")  # not this server's file now
    own = lifecycle.marks / "conf"
    own.mkdir()
    (own / "own.yaml").write_text("log_level: ERROR\nhealth_ttl_seconds: 12\n")
    config = lifecycle.run("config", "--json")
    assert config.code == 0, config
    values = config.json()["settings"]
    assert values["port"]["value"] == 9002
    assert values["port"]["from"] == "environment variable TOY_SERVER_PORT"
    assert values["log_level"]["value"] == "ERROR"
    assert values["log_level"]["from"] == "conf/own.yaml line 1"
    broken = lifecycle.run("config", TOY_SERVER_PORT="ninety")
    assert broken.code == 5
    assert "from environment variable TOY_SERVER_PORT" in broken.err
    unit = lifecycle.run("service", "systemd")
    assert unit.code == 0, unit
    assert '"TOY_SERVER_PORT=9002"' in unit.out
    # Without its own prefix, the shared variable applies.
    lifecycle.env.pop("TOY_ENV_PREFIX")
    assert lifecycle.run("config", "--json").json()["settings"]["port"]["value"] == 9001
