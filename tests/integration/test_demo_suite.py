"""The pytest plugin's lifecycle suite, run against the demo server."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from mcp_lifecycle.testing import LifecycleSuite
from tests.conftest import SESSION_TOKEN, TESTS, TOKEN_VAR, UNMEASURED

DEMO = shutil.which("mcp-lifecycle-demo") or str(Path(sys.executable).parent / "mcp-lifecycle-demo")


class TestDemoLifecycle(LifecycleSuite):
    command: ClassVar[list[str]] = [DEMO]
    http = True
    # UNMEASURED: the suite runs paths the lifecycle tests measure already, on a server (the
    # demo) that tests/integration/test_mcp_demo.py measures.
    env: ClassVar[dict[str, str]] = {TOKEN_VAR: f"{SESSION_TOKEN}-suite", **UNMEASURED}


class TestStdioLifecycle(LifecycleSuite):
    """The same suite on a stdio server: what applies passes, the rest says why it is skipped."""

    command: ClassVar[list[str]] = [sys.executable, str(TESTS / "servers" / "stdio_server.py")]
    env: ClassVar[dict[str, str]] = {TOKEN_VAR: f"{SESSION_TOKEN}-stdio-suite", **UNMEASURED}


def test_a_wrong_command_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from mcp_lifecycle.testing import LifecycleSuite

        class TestWrong(LifecycleSuite):
            command = ["/nonexistent/my-server"]
        """
    )
    result = pytester.runpytest("-k", "start_returns")  # the plugin loads by its entry point
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot run*/nonexistent/my-server*set `command`*"])
    assert "JSONDecodeError" not in result.stdout.str()
