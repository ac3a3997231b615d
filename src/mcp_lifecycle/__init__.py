"""mcp-lifecycle: a standard, hardened lifecycle CLI for MCP servers."""

from mcp_lifecycle.cli import MCPServerCLIFactory
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.files import validate_cache_ownership
from mcp_lifecycle.identity import is_process_alive
from mcp_lifecycle.logs import configure_logging
from mcp_lifecycle.pidfile import write_pid_file
from mcp_lifecycle.readiness import notify_ready
from mcp_lifecycle.settings import MCPServerSettings
from mcp_lifecycle.signals import SignalHandler
from mcp_lifecycle.snapshot import (
    RuntimeHealthSnapshot,
    get_snapshot_age_seconds,
    is_snapshot_fresh,
    load_runtime_health,
    write_runtime_health,
)
from mcp_lifecycle.state import validate_pid_integrity

__all__ = [
    "ExitCode",
    "MCPServerCLIFactory",
    "MCPServerSettings",
    "RuntimeHealthSnapshot",
    "SignalHandler",
    "configure_logging",
    "get_snapshot_age_seconds",
    "is_process_alive",
    "is_snapshot_fresh",
    "load_runtime_health",
    "notify_ready",
    "validate_cache_ownership",
    "validate_pid_integrity",
    "write_pid_file",
    "write_runtime_health",
]
