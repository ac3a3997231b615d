"""The layout's rules, read from the source: imports flow one way, no import cycle, small classes.

Every import counts, a lazy one inside a function too: it is a dependency all the same.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mcp_lifecycle"
# Who may import whom, by top-level part: the CLI edge on top, the process sides below it, the
# building blocks at the bottom. `errors`, `exit_codes`, `handoff` and `logs` are for everyone.
LAYERS = {
    "cli": {"fleet", "control", "server", "service", "settings", "files", "transports"},
    "fleet": {"control", "server", "settings", "files", "transports"},
    "control": {"settings", "files", "transports"},
    "server": {"settings", "files", "transports"},
    "service": {"settings", "files", "transports"},
    "transports": {"settings", "files", "server"},
    "settings": {"files"},
    "files": set(),
}
SHARED = {"errors", "exit_codes", "handoff", "logs"}
MAX_CLASS_LINES = 250


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from mcp_lifecycle.files import name_socket` imports a module, not a name.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("mcp_lifecycle.")}


def _graph() -> dict[str, set[str]]:
    sources = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {dep for dep in _imports(path) if dep in sources and dep != name}
        for name, path in sources.items()
    }


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_import_cycle() -> None:
    graph = _graph()
    # A package's __init__ that re-exports lazily names its own modules: not a cycle.
    for name, deps in graph.items():
        graph[name] = {dep for dep in deps if not dep.startswith(name + ".")}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_imports_flow_one_way() -> None:
    wrong = []
    for module, deps in _graph().items():
        part = _part(module)
        if part not in LAYERS:
            continue
        for dep in deps:
            target = _part(dep)
            if target in (part, *SHARED) or target in LAYERS[part] or dep == "mcp_lifecycle":
                continue
            wrong.append(f"{module} imports {dep}")
    assert wrong == []


def test_nothing_outside_the_cli_imports_it() -> None:
    users = {
        module
        for module, deps in _graph().items()
        if any(_part(dep) == "cli" for dep in deps)
        and _part(module) != "cli"
        and module != "mcp_lifecycle"  # the public name MCPServerCLIFactory, lazily
    }
    assert users == {"mcp_lifecycle.demo.server"}  # the demo is a server author's code


def test_no_class_is_longer_than_the_limit() -> None:
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    long.append(f"{_module_name(path)}.{node.name}: {lines} lines")
    assert long == []
