"""The README's "Manage servers you did not write" runs exactly as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TOKEN_VAR, kill_processes_with_token, wait_for
from tests.integration.test_fleet import Fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fleet"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Manage servers you did not write")
    return text[start : text.index("\n## ", start + 1)]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.DOTALL)


def test_the_examples_in_the_readme_are_the_files_in_examples() -> None:
    (shown,) = _blocks("json")
    assert json.loads(shown) == json.loads((EXAMPLE / ".mcp.json").read_text())
    (fleet_file,) = _blocks("yaml")
    assert fleet_file == (EXAMPLE / "mcp-lifecycle.yaml").read_text()
    assert yaml.safe_load(fleet_file)["servers"].keys() == {"notes-http", "notes"}


@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "activate").exists(),
    reason="the README's commands activate the project's .venv (scripts/test.sh makes it)",
)
def test_the_readme_fleet_commands_run_as_written(tmp_path: Path, test_token: str) -> None:
    (commands,) = _blocks("bash")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MCP_SERVER_", "MCP_LIFECYCLE_"))
    }
    env.update({TOKEN_VAR: test_token, "XDG_STATE_HOME": str(tmp_path / "state")})
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", commands],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert "started notes" in result.stdout
        assert "notes is healthy" in result.stdout
        config = json.loads(result.stdout[result.stdout.index("{") : result.stdout.rindex("}") + 1])
        assert config["mcpServers"]["notes"]["headers"]["Authorization"].startswith("Bearer ")
        assert "stopped notes" in result.stdout
        fleet = Fleet(EXAMPLE, env)
        assert wait_for(lambda: not fleet.processes(), 10)
    finally:
        leaked = kill_processes_with_token(test_token)
    assert not leaked, f"the README's commands left processes running: {leaked}"
