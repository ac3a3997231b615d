"""How to run this same CLI again, in a fresh interpreter, however it was launched."""

from __future__ import annotations

import os
import sys


def this_cli(arguments: list[str]) -> list[str]:
    """The argv that runs this CLI again with `arguments`: `python -m pkg.mod` when it was run
    so (relative imports need the module), else `python /abs/path/to/script`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", None):
        module = spec.name.removesuffix(".__main__")
        return [sys.executable, "-m", module, *arguments]
    return [sys.executable, os.path.abspath(sys.argv[0]), *arguments]
