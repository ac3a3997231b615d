"""A server that does nothing but stay ready: its CPU time is the heartbeat's."""

from __future__ import annotations

import threading

from mcp_lifecycle.cli import MCPServerCLIFactory
from mcp_lifecycle.server.readiness import notify_ready


def run() -> None:
    notify_ready()
    threading.Event().wait()


app = MCPServerCLIFactory("bench-idle", start_handler=run).create_app()

if __name__ == "__main__":
    app()
