"""The hot commands pay only for what they use (checked by modules loaded, never by time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Lifecycle

PROBE = """
import json, sys
sys.argv = ["mcp-lifecycle-demo", *sys.argv[1:]]
from mcp_lifecycle.demo.server import app
try:
    app()
except SystemExit:
    pass
heavy = ["mcp", "uvicorn", "rich", "pydantic", "pydantic_settings", "yaml", "anyio",
         "starlette", "mcp_lifecycle.demo.tools", "mcp_lifecycle.demo.settings"]
print(json.dumps({"loaded": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""


def _loaded(lifecycle: Lifecycle, *args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=lifecycle.env,
        cwd=lifecycle.marks,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    line = [line for line in proc.stderr.splitlines() if line.startswith('{"loaded"')][-1]
    return list(json.loads(line)["loaded"])


@pytest.mark.parametrize("command", ["status", "stop", "health", "logs"])
def test_hot_commands_import_nothing_heavy(lifecycle: Lifecycle, command: str) -> None:
    # The first run resolves the settings in full (pydantic-settings) and caches them.
    first = _loaded(lifecycle, command)
    assert "mcp" not in first
    assert "uvicorn" not in first
    assert "mcp_lifecycle.demo.tools" not in first
    assert _loaded(lifecycle, command) == []


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
