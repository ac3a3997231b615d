"""Without the Linux-only calls (no os.waitid, no pidfd: macOS, Python < 3.13 there), start,
a crash at start and stop still hold: the fallbacks run here through a sitecustomize."""

from __future__ import annotations

import pytest

from tests.conftest import TESTS, Lifecycle, gone, run_cli

PORTABLE = str(TESTS / "portable")


def _portable(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(PYTHONPATH=PORTABLE)
    probe = lifecycle.run("--help")
    assert probe.code == 0


def test_start_and_stop_without_waitid_and_pidfd(lifecycle: Lifecycle) -> None:
    _portable(lifecycle)
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    assert lifecycle.run("status").code == 0
    stopped = lifecycle.run("stop")
    assert stopped.code == 0, stopped.err
    assert gone(pid)


def test_a_crash_at_start_without_waitid_is_reported_and_leaves_nothing(
    lifecycle: Lifecycle,
) -> None:
    _portable(lifecycle)
    for mode, message in (
        ("crash", "boom: the database is unreachable"),
        ("hard_exit", "exited with code 3"),
    ):
        failed = lifecycle.run("start", TOY_MODE=mode)
        assert failed.code == 1, failed.err
        assert message in failed.err
        assert "AttributeError" not in failed.err
        assert not lifecycle.pid_file.exists()
        assert lifecycle.run("status").code == 2


def test_the_sitecustomize_removes_the_calls(lifecycle: Lifecycle) -> None:
    import subprocess
    import sys

    code = "import os; print(hasattr(os, 'waitid'), hasattr(os, 'pidfd_open'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**lifecycle.env, "PYTHONPATH": PORTABLE},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["False", "False"]


def test_windows_gets_one_line_and_exit_1(lifecycle: Lifecycle) -> None:
    """On Windows, importing the package, and so every command (the demo's `doctor` here), says
    so in one line."""
    import subprocess
    import sys

    for code in (
        "import sys; sys.platform = 'win32'; import mcp_lifecycle",
        "import runpy, sys; sys.platform = 'win32'; sys.argv = ['demo', 'doctor']; "
        "runpy.run_module('mcp_lifecycle.demo.server', run_name='__main__')",
    ):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "mcp-lifecycle does not run on Windows: run your server in WSL "
            "(https://learn.microsoft.com/windows/wsl/)"
        ]


def test_in_the_portable_pass_every_process_of_the_tests_is_portable(lifecycle: Lifecycle) -> None:
    """`scripts/test.sh` runs the lifecycle tests again with tests/portable on PYTHONPATH: the
    processes those tests start (in their own folders) must get it too. A relative PYTHONPATH
    reached none of them, and the fallbacks went untested by that pass."""
    import os
    import subprocess
    import sys

    if not os.environ.get("MCP_LIFECYCLE_PORTABLE"):
        pytest.skip("the main pass: nothing is taken away")
    code = "import os; print(os.environ.get('MCP_LIFECYCLE_PORTABLE'), hasattr(os, 'waitid'))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=lifecycle.env,
        cwd=lifecycle.marks,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["1", "False"]
    # And the CLI calls: forks of the warm interpreter, which was started portable too.
    script = lifecycle.marks / "what_is_taken_away.py"
    script.write_text(f"{code}\nimport mcp_lifecycle.files.kernel as k; print(k.LINUX)\n")
    argv = [sys.executable, str(script)]
    if lifecycle.forks is not None:  # None: MCP_LIFECYCLE_TEST_EXEC=1, every call exec'd
        assert lifecycle.forks.can_run(argv, lifecycle.env, lifecycle.marks)
    forked = run_cli(lifecycle.forks, argv, lifecycle.env, lifecycle.marks, 30)
    assert forked.out.split() == ["1", "False", "False"]
