"""The pytest plugin's lifecycle suite, run against the demo server."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import ClassVar

from mcp_lifecycle.testing import LifecycleSuite
from tests.conftest import SESSION_TOKEN, TOKEN_VAR

DEMO = shutil.which("mcp-lifecycle-demo") or str(Path(sys.executable).parent / "mcp-lifecycle-demo")


class TestDemoLifecycle(LifecycleSuite):
    command: ClassVar[list[str]] = [DEMO]
    http = True
    env: ClassVar[dict[str, str]] = {TOKEN_VAR: f"{SESSION_TOKEN}-suite"}
