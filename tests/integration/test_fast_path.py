"""The hot commands pay only for what they use (checked by modules loaded, never by time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import UNMEASURED, Lifecycle, free_port

DEMO = str(Path(sys.executable).parent / "mcp-lifecycle-demo")

PROBE = """
import json, sys
sys.argv = ["mcp-lifecycle-demo", *sys.argv[1:]]
from mcp_lifecycle.demo.server import app
try:
    app()
except SystemExit:
    pass
print(json.dumps({"loaded": sorted(sys.modules)}), file=sys.stderr)
"""
HEAVY = {
    *("mcp", "uvicorn", "rich", "pydantic", "pydantic_settings", "yaml", "anyio", "starlette"),
    *("mcp_lifecycle.demo.tools", "mcp_lifecycle.demo.settings", "mcp_lifecycle.demo.commands"),
    *("typer", "click", "psutil"),
    # Python's own, and not light: `dataclasses` imports `inspect` (ast, dis, tokenize),
    # `logging` threading, and platformdirs `tempfile` (with shutil, bz2, lzma, random).
    *("dataclasses", "inspect", "logging", "platformdirs", "tempfile"),
}


def _loaded(lifecycle: Lifecycle, *args: str, also: tuple[str, ...] = ()) -> list[str]:
    """Which of HEAVY (and `also`) the demo's CLI loaded to answer `args`."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        # Bare: coverage, measuring a subprocess, loads modules of its own (dataclasses).
        env={**lifecycle.env, **UNMEASURED},
        cwd=lifecycle.marks,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    line = [line for line in proc.stderr.splitlines() if line.startswith('{"loaded"')][-1]
    return [module for module in json.loads(line)["loaded"] if module in HEAVY | set(also)]


@pytest.mark.parametrize("command", ["status", "stop", "health", "logs"])
def test_hot_commands_import_nothing_heavy(lifecycle: Lifecycle, command: str) -> None:
    # The first run resolves the settings in full (pydantic-settings) and caches them.
    first = _loaded(lifecycle, command)
    assert "mcp" not in first
    assert "uvicorn" not in first
    assert "mcp_lifecycle.demo.tools" not in first
    again = _loaded(lifecycle, command)
    if command == "logs":  # answered by the Typer app (Typer 0.29 and later load pydantic)
        assert not {"mcp", "uvicorn", "mcp_lifecycle.demo.tools"} & set(again)
    else:  # answered without Typer, Click or psutil (cli.fast)
        assert again == []


def test_status_of_a_running_server_parses_no_date_and_opens_no_socket(
    lifecycle: Lifecycle,
) -> None:
    # Its uptime and age come from the monotonic clock; its proof from the lock, not the name.
    lifecycle.launcher = [DEMO]
    lifecycle.name = "mcp-lifecycle-demo"
    lifecycle.set_env(MCP_SERVER_PORT=str(free_port()))
    assert lifecycle.run("start").code == 0
    try:
        for command in ("status", "health"):
            _loaded(lifecycle, command)  # the first run caches the settings
            assert _loaded(lifecycle, command, also=("datetime", "socket")) == []
    finally:
        assert lifecycle.run("stop").code == 0


def test_config_never_imports_the_mcp_stack(lifecycle: Lifecycle) -> None:
    loaded = _loaded(lifecycle, "config")
    for module in ("mcp", "uvicorn", "rich", "anyio", "mcp_lifecycle.demo.tools"):
        assert module not in loaded


def test_the_cache_follows_every_layer(lifecycle: Lifecycle, tmp_path: Path) -> None:
    def ttl(env_ttl: str | None = None) -> float:
        if env_ttl:
            lifecycle.set_env(MCP_SERVER_HEALTH_TTL_SECONDS=env_ttl)
        result = lifecycle.run("status", "--json")
        lifecycle.env.pop("MCP_SERVER_HEALTH_TTL_SECONDS", None)
        assert result.code == 2, result
        return float(result.json()["ttl_seconds"])

    lifecycle.env.pop("MCP_SERVER_HEALTH_TTL_SECONDS")
    assert ttl() == 60
    assert ttl() == 60  # cached
    settings = lifecycle.marks / "settings"
    settings.mkdir()
    (settings / "toy.yaml").write_text("health_ttl_seconds: 20\n")
    assert ttl() == 20
    (settings / "local.yaml").write_text("health_ttl_seconds: 30\n")
    assert ttl() == 30
    assert ttl("40") == 40
    assert (
        lifecycle.run("--set", "health_ttl_seconds=50", "status", "--json").json()["ttl_seconds"]
        == 50
    )
    (settings / "local.yaml").write_text("health_ttl_seconds: 0\n")
    assert lifecycle.run("status").code == 5, "a bad file is never hidden by the cache"
    (settings / "local.yaml").write_text("health_ttl_seconds: 30\n")
    assert ttl() == 30


def test_a_corrupt_cache_entry_is_a_miss(lifecycle: Lifecycle) -> None:
    assert lifecycle.run("status").code == 2
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "mcp-lifecycle" / "settings"
    for entry in cache.glob("*.json"):
        entry.write_text("{not json")
    assert lifecycle.run("status").code == 2


SCRIPT = """
from mcp_lifecycle import MCPServerCLIFactory
app = MCPServerCLIFactory("cached", settings="{module}:{cls}").create_app()
if __name__ == "__main__":
    app()
"""


def _server(tmp: Path, module_text: str, cls: str = "Settings") -> list[str]:
    (tmp / "cached_settings.py").write_text(module_text)
    (tmp / "cached_cli.py").write_text(SCRIPT.format(module="cached_settings", cls=cls))
    return [sys.executable, str(tmp / "cached_cli.py")]


def _ttl(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float | None]:
    proc = subprocess.run(
        [*cmd, "status", "--json"], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 5:
        return 5, None
    return proc.returncode, float(json.loads(proc.stdout)["ttl_seconds"])


def _env(lifecycle: Lifecycle, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in lifecycle.env.items() if not k.startswith("MCP_SERVER_HEALTH")}
    env["PYTHONPATH"] = str(tmp)
    return env


def test_a_change_in_the_settings_class_or_its_base_is_seen(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    base = "from mcp_lifecycle import MCPServerSettings\nclass Base(MCPServerSettings):\n"
    (tmp_path / "cached_base.py").write_text(base + "    health_ttl_seconds: float = 20\n")
    cmd = _server(tmp_path, "from cached_base import Base\nclass Settings(Base):\n    pass\n")
    env = _env(lifecycle, tmp_path)
    assert _ttl(cmd, env, tmp_path) == (2, 20)
    assert _ttl(cmd, env, tmp_path) == (2, 20)
    time.sleep(0.01)
    (tmp_path / "cached_base.py").write_text(base + "    health_ttl_seconds: float = 25\n")
    assert _ttl(cmd, env, tmp_path) == (2, 25)
    invalid = "    health_ttl_seconds: float = 25\n    heartbeat_seconds: float | None = 20\n"
    (tmp_path / "cached_base.py").write_text(base + invalid)
    assert _ttl(cmd, env, tmp_path) == (5, None), "a heartbeat over half the TTL is invalid"


def test_classes_that_read_other_inputs_are_never_cached(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    module = (
        "from pydantic_settings import SettingsConfigDict\n"
        "from mcp_lifecycle import MCPServerSettings\n"
        "class Settings(MCPServerSettings):\n"
        "    model_config = SettingsConfigDict(env_prefix='WEATHER_', extra='forbid')\n"
    )
    cmd = _server(tmp_path, module)
    env = _env(lifecycle, tmp_path)
    assert _ttl(cmd, env, tmp_path) == (2, 60)
    assert _ttl(cmd, {**env, "WEATHER_HEALTH_TTL_SECONDS": "30"}, tmp_path) == (2, 30)
    assert _ttl(cmd, {**env, "WEATHER_HEALTH_TTL_SECONDS": "0"}, tmp_path) == (5, None)


def test_an_insecure_cache_folder_is_not_used(lifecycle: Lifecycle, tmp_path: Path) -> None:
    cache = tmp_path / "user-cache"
    folder = cache / "mcp-lifecycle" / "settings"
    folder.mkdir(parents=True)
    os.chmod(folder, 0o777)
    env = {**lifecycle.env, "XDG_CACHE_HOME": str(cache)}
    assert lifecycle.run("status", XDG_CACHE_HOME=str(cache)).code == 2
    assert list(folder.iterdir()) == [], "nothing is written to a folder others can write"
    os.chmod(folder, 0o700)
    assert lifecycle.run("status", XDG_CACHE_HOME=str(cache)).code == 2
    entries = list(folder.iterdir())
    assert len(entries) == 1
    # An entry planted for another server is refused, whatever it says.
    planted = json.loads(entries[0].read_text())
    planted["values"]["server_name"] = "someone-else"
    entries[0].write_text(json.dumps(planted))
    del env
    assert lifecycle.run("status", XDG_CACHE_HOME=str(cache)).code == 2


def test_a_hot_command_that_warns_logs_as_every_command_does(lifecycle: Lifecycle) -> None:
    # The hot path sets logging up only when something logs: a warning still comes out in
    # the one format, at WARNING by default and with -v too.
    lifecycle.set_env(MCP_SERVER_HEALTH_TTL_SECONDS="7200", MCP_SERVER_HEARTBEAT_SECONDS="3600")
    assert lifecycle.run("start").code == 0
    try:
        lifecycle.snapshot_file.write_text("{not json")
        for flags in ([], ["-v"]):
            result = lifecycle.run(*flags, "status")
            assert result.code == 4, result  # no snapshot of its own: not vouched for
            warning = [line for line in result.err.splitlines() if "not valid JSON" in line]
            assert len(warning) == 1, result.err
            assert " WARNING mcp_lifecycle.files.snapshot [" in warning[0]
    finally:
        assert lifecycle.run("stop").code == 0


def test_a_hot_command_warns_in_the_one_format_on_a_cache_miss_too(lifecycle: Lifecycle) -> None:
    # The settings are resolved in full (a cache miss): what that warns about comes out as it
    # does from every command, and `--set log_level` (a server setting) changes nothing here.
    settings = lifecycle.marks / "settings"
    settings.mkdir()
    (settings / "local.yaml").write_text("bogus_key: 1\n")
    for args in (["status"], ["--set", "log_level=debug", "status"]):
        result = lifecycle.run(*args)
        assert result.code == 2, result
        warning = [line for line in result.err.splitlines() if "bogus_key" in line]
        assert len(warning) == 1, result.err
        assert " WARNING mcp_lifecycle.settings.model [" in warning[0]
        assert " DEBUG " not in result.err
