"""The CLI edge in this process: error mapping, JSON errors, settings given in code."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mcp_lifecycle import MCPServerCLIFactory, MCPServerSettings
from mcp_lifecycle.control.health import _run_probe

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in ("MCP_SERVER_CACHE_ROOT", "MCP_SERVER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MCP_SERVER_CACHE_ROOT", str(tmp_path / "cache"))


def test_settings_instance_values_act_as_code_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = MCPServerCLIFactory("srv", settings=MCPServerSettings(port=1234))
    assert factory.load_settings().port == 1234
    monkeypatch.setenv("MCP_SERVER_PORT", "4321")
    assert factory.load_settings().port == 4321


def test_start_without_a_handler_is_a_configuration_error() -> None:
    app = MCPServerCLIFactory("srv").create_app()
    result = runner.invoke(app, ["start"])
    assert result.exit_code == 5
    assert "has no start handler" in result.output


def test_json_errors_are_json() -> None:
    app = MCPServerCLIFactory("srv").create_app()
    result = runner.invoke(app, ["stop", "--json"])
    assert result.exit_code == 2
    assert '"exit_code": 2' in result.output
    assert '"error": "srv is not running"' in result.output


@pytest.mark.parametrize("error", [RuntimeError("kaput"), KeyboardInterrupt()])
def test_unexpected_errors_never_show_a_traceback(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    import mcp_lifecycle.control.status as status

    def explode(*args: object) -> object:
        raise error

    monkeypatch.setattr(status, "observe", explode)
    app = MCPServerCLIFactory("srv").create_app()
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "unexpected" not in result.output
    assert ("RuntimeError: kaput" in result.output) or ("interrupted" in result.output)


def test_probe_results() -> None:
    def boom() -> bool:
        raise OSError("disk gone")

    assert _run_probe(lambda: None) == (True, "ok")
    assert _run_probe(lambda: True) == (True, "ok")
    assert _run_probe(lambda: False) == (False, "failed")
    assert _run_probe(lambda: "queue is stuck") == (False, "queue is stuck")
    assert _run_probe(boom) == (False, "OSError: disk gone")


def test_custom_commands_live_beside_ours() -> None:
    factory = MCPServerCLIFactory("srv")
    app = factory.create_app()

    @app.command()
    def hello() -> None:
        print("hello from the author")

    result = runner.invoke(app, ["hello"])
    assert result.exit_code == 0
    assert "hello from the author" in result.output


def test_a_commands_flags_end_with_it() -> None:
    """A process that runs several commands (tests, a REPL) never lends one command's global
    flags to code that runs after it."""
    factory = MCPServerCLIFactory("srv", settings=MCPServerSettings(port=1234))
    app = factory.create_app()
    assert runner.invoke(app, ["--port", "999", "config", "--json"]).exit_code == 0
    assert factory.load_settings().port == 1234
