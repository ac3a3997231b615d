"""The hot path (`cli.fast`) answers exactly as the Typer app does: the same output, errors and
exit code for every command line it takes, and it leaves every other one to Typer.

Both run in this process on the same factory: the fast path through `fast.run`, Typer through
its CliRunner. Hypothesis writes the command lines: global options before or after the command,
values good and bad, options repeated, help, things no one should type.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mcp_lifecycle import MCPServerCLIFactory
from mcp_lifecycle.cli import fast
from mcp_lifecycle.testing import gone, wait_for

TOY = Path(__file__).parent / "servers" / "toy_server.py"
RUNNER = CliRunner()
# What differs between two runs a moment apart: ages, uptimes, durations.
_MOMENT = re.compile(r"\d+\.\d+|\b\d+(?=s\b)")


def _both(factory: MCPServerCLIFactory, argv: list[str]) -> tuple[object, object] | None:
    """(fast, Typer) answers to `argv`, each (exit code, stdout, stderr); None when the fast
    path leaves it to Typer."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = fast.run(argv, factory.loader, factory.hooks.stop_handler)
    if code is None:
        return None
    result = RUNNER.invoke(_typer_app(factory), argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return (code, *_steady(out.getvalue(), err.getvalue())), (
        result.exit_code,
        *_steady(result.stdout, result.stderr),
    )


_APPS: weakref.WeakKeyDictionary[MCPServerCLIFactory, typer.Typer] = weakref.WeakKeyDictionary()


def _typer_app(factory: MCPServerCLIFactory) -> typer.Typer:
    """One Typer app per factory (hypothesis calls many times with the same one)."""
    if factory not in _APPS:
        _APPS[factory] = factory.create_app()
    return _APPS[factory]


def _steady(*texts: str) -> tuple[str, ...]:
    return tuple(_MOMENT.sub("N", text) for text in texts)


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MCPServerCLIFactory:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("MCP_SERVER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MCP_SERVER_CACHE_ROOT", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    return MCPServerCLIFactory("toy")


GLOBAL = st.sampled_from(
    [
        ["-v"],
        ["--verbose"],
        ["--log-level", "debug"],
        ["--log-level=ERROR"],
        ["--log-level", "loud"],
        ["--json-logs"],
        ["--text-logs"],
        ["--port", "8123"],
        ["--port=0"],
        ["--port", "abc"],
        ["--port", "+80"],
        ["--host", "127.0.0.1"],
        ["--set", "health_ttl_seconds=30"],
        ["--set", "health-ttl-seconds=45"],
        ["--set", "nonsense"],
        ["--set", "=x"],
        ["--set", "port=9001"],
        ["--set", "no_such_setting=1"],
        ["--cache-root", "elsewhere"],
        ["--log-file", "x.log"],
        ["--help"],
        ["-h"],
        ["--"],
        ["--port"],
    ]
)
COMMAND = st.sampled_from(
    [
        ["status"],
        ["status", "--json"],
        ["health"],
        ["health", "--json"],
        ["health", "--probe"],
        ["stop"],
        ["stop", "--json"],
        ["stop", "--no-kill"],
        ["stop", "--timeout", "3"],
        ["stop", "--timeout=0.05"],
        ["stop", "--timeout", "nan"],
        ["status", "extra"],
        ["STATUS"],
        ["status", "--json", "--json"],
    ]
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    before = draw(st.lists(GLOBAL, max_size=3))
    after = draw(st.lists(GLOBAL, max_size=2))
    command = draw(COMMAND)
    return [word for part in [*before, command, *after] for word in part]


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=command_lines())
def test_every_hot_command_line_gets_typers_answer(
    factory: MCPServerCLIFactory, argv: list[str]
) -> None:
    answers = _both(factory, argv)
    if answers is not None:
        fast_answer, typer_answer = answers
        assert fast_answer == typer_answer, argv


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["--port", "8123", "status", "--json"],
        ["health", "--log-level", "info"],
        ["stop", "--timeout", "2", "--json"],
        ["--set", "health_ttl_seconds=30", "stop", "--no-kill"],
    ],
)
def test_plain_hot_command_lines_are_answered_without_typer(
    factory: MCPServerCLIFactory, argv: list[str]
) -> None:
    answers = _both(factory, argv)
    assert answers is not None, "the fast path left a plain line to Typer"
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["status", "--help"],
        ["health", "--probe"],
        ["start"],
        ["--port", "0", "status"],
        ["stop", "--timeout", "0.01"],
        ["status", "--json", "--json"],
        ["-v", "--log-level", "info", "status"],
    ],
)
def test_anything_unusual_is_left_to_typer(factory: MCPServerCLIFactory, argv: list[str]) -> None:
    assert fast.run(argv, factory.loader, None) is None


@pytest.fixture
def running(tmp_path: Path, test_token: str) -> Iterator[dict[str, str]]:
    """The toy server, started for real, in this test's cache root."""
    from tests.conftest import TOKEN_VAR

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_SERVER_", "TOY_"))}
    env.update(
        {
            TOKEN_VAR: test_token,
            "MCP_SERVER_CACHE_ROOT": str(tmp_path / "cache"),
            "TOY_MARKS": str(tmp_path),
        }
    )
    started = subprocess.run(
        [sys.executable, str(TOY), "start"], env=env, capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "cache" / "toy.pid").read_text())
    try:
        yield env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        assert wait_for(lambda: gone(pid), 10)


@pytest.mark.parametrize(
    "argv", [["status"], ["status", "--json"], ["health"], ["health", "--json", "-v"]]
)
def test_a_running_server_gets_the_same_report_both_ways(
    factory: MCPServerCLIFactory, running: dict[str, str], argv: list[str]
) -> None:
    answers = _both(factory, argv)
    assert answers is not None
    fast_answer, typer_answer = answers
    assert fast_answer == typer_answer
    assert fast_answer[0] == 0  # type: ignore[index]
    assert "running" in str(fast_answer)


# -- what authors add, and what they rely on ---------------------------------------------------

MINE = '''
import typer


def status() -> None:
    """The author's own status."""
    typer.echo("AUTHOR STATUS")


def hello() -> None:
    typer.echo("hello")
'''


def test_an_authors_own_status_by_import_string_is_the_one_that_runs(
    factory: MCPServerCLIFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "authors_commands.py").write_text(MINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    factory.add_command("authors_commands:status")
    app = factory.create_app()
    assert factory._run_fast(["status"]) is None  # Typer decides, and runs the author's
    result = RUNNER.invoke(app, ["status"])
    assert (result.exit_code, result.stdout) == (0, "AUTHOR STATUS\n")


def test_a_command_added_after_the_app_was_built_is_there(
    factory: MCPServerCLIFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "authors_commands.py").write_text(MINE)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = factory.create_app()
    assert isinstance(app, typer.Typer)  # builds it
    factory.add_command("authors_commands:hello")
    result = RUNNER.invoke(app, ["hello"])
    assert (result.exit_code, result.stdout) == (0, "hello\n")


def test_a_bad_import_string_is_one_line_not_a_traceback(
    factory: MCPServerCLIFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    factory.add_command("no_such_module_here:call")
    app = factory.create_app()
    monkeypatch.setattr(sys, "argv", ["toy", "--help"])
    with pytest.raises(SystemExit) as exited:
        app()
    assert exited.value.code == 5
    err = capsys.readouterr().err
    assert "cannot add the command 'no_such_module_here:call'" in err
    assert "Traceback" not in err


def test_a_stop_handler_sees_this_invocations_settings_on_the_fast_path(
    factory: MCPServerCLIFactory, running: dict[str, str]
) -> None:
    """Typer's root callback makes the flags this command's; the fast path must too, or an
    author's stop_handler that loads the settings acts on others."""
    seen: list[str] = []

    def stop_handler(pid: int) -> None:
        seen.append(factory.load_settings().log_level)
        os.kill(pid, signal.SIGTERM)

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = fast.run(["--log-level", "error", "stop"], factory.loader, stop_handler)
    assert code == 0, err.getvalue()
    assert seen == ["ERROR"]
    assert factory.load_settings().log_level == "INFO"  # and only for that command
