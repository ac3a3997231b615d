"""On PYTHONPATH, makes the first `import mcp` take 3 s longer: a machine too loaded to import
the MCP SDK in its usual ~0.6 s, arranged for real."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _SlowSdk:
    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "mcp":
            sys.meta_path.remove(_SlowSdk)
            time.sleep(3)
        return None


sys.meta_path.insert(0, _SlowSdk)
