"""mcp-lifecycle: a standard, hardened lifecycle CLI for MCP servers.

The public names are loaded on first use, so that `import mcp_lifecycle.<module>` (a command's
fast path, the pytest plugin) pays only for what it uses.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if sys.platform == "win32":
    # flock, process groups and POSIX signals are what every guarantee rests on.
    sys.stderr.write(
        "mcp-lifecycle does not run on Windows: run your server in WSL "
        "(https://learn.microsoft.com/windows/wsl/)\n"
    )
    raise SystemExit(1)

if TYPE_CHECKING:
    from mcp_lifecycle.cli import MCPServerCLIFactory
    from mcp_lifecycle.control.inspect import validate_pid_integrity
    from mcp_lifecycle.exit_codes import ExitCode
    from mcp_lifecycle.files.identity import is_process_alive
    from mcp_lifecycle.files.pidfile import write_pid_file
    from mcp_lifecycle.files.private import validate_cache_ownership
    from mcp_lifecycle.files.snapshot import (
        RuntimeHealthSnapshot,
        get_snapshot_age_seconds,
        is_snapshot_fresh,
        load_runtime_health,
        write_runtime_health,
    )
    from mcp_lifecycle.logs import configure_logging
    from mcp_lifecycle.server.readiness import notify_ready
    from mcp_lifecycle.server.signals import SignalHandler
    from mcp_lifecycle.settings.model import MCPServerSettings
    from mcp_lifecycle.transports.http_server import fastmcp_handler, streamable_http_handler
    from mcp_lifecycle.transports.stdio_server import stdio_handler

_WHERE = {
    "ExitCode": "mcp_lifecycle.exit_codes",
    "MCPServerCLIFactory": "mcp_lifecycle.cli",
    "MCPServerSettings": "mcp_lifecycle.settings.model",
    "RuntimeHealthSnapshot": "mcp_lifecycle.files.snapshot",
    "SignalHandler": "mcp_lifecycle.server.signals",
    "configure_logging": "mcp_lifecycle.logs",
    "fastmcp_handler": "mcp_lifecycle.transports.http_server",
    "stdio_handler": "mcp_lifecycle.transports.stdio_server",
    "streamable_http_handler": "mcp_lifecycle.transports.http_server",
    "get_snapshot_age_seconds": "mcp_lifecycle.files.snapshot",
    "is_process_alive": "mcp_lifecycle.files.identity",
    "is_snapshot_fresh": "mcp_lifecycle.files.snapshot",
    "load_runtime_health": "mcp_lifecycle.files.snapshot",
    "notify_ready": "mcp_lifecycle.server.readiness",
    "validate_cache_ownership": "mcp_lifecycle.files.private",
    "validate_pid_integrity": "mcp_lifecycle.control.inspect",
    "write_pid_file": "mcp_lifecycle.files.pidfile",
    "write_runtime_health": "mcp_lifecycle.files.snapshot",
}

__all__ = [
    "ExitCode",
    "MCPServerCLIFactory",
    "MCPServerSettings",
    "RuntimeHealthSnapshot",
    "SignalHandler",
    "configure_logging",
    "fastmcp_handler",
    "get_snapshot_age_seconds",
    "is_process_alive",
    "is_snapshot_fresh",
    "load_runtime_health",
    "notify_ready",
    "stdio_handler",
    "streamable_http_handler",
    "validate_cache_ownership",
    "validate_pid_integrity",
    "write_pid_file",
    "write_runtime_health",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mcp_lifecycle' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
