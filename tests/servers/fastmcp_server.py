"""A server built with the fastmcp package, served by mcp-lifecycle."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp_lifecycle import MCPServerCLIFactory
from mcp_lifecycle.transports.http_server import fastmcp_handler


def build() -> Any:
    from fastmcp import FastMCP

    @asynccontextmanager
    async def lifespan(server: Any) -> AsyncIterator[None]:
        yield
        marks = os.environ.get("TOY_MARKS")
        if marks:  # proves the app's teardown ran on SIGTERM
            Path(marks, "lifespan-teardown").write_text("done")

    server = FastMCP("fast-toy", lifespan=lifespan)

    @server.tool
    def double(n: int) -> int:
        """Twice n."""
        return 2 * n

    return server


app = MCPServerCLIFactory("toy", start_handler=fastmcp_handler(build)).create_app()

if __name__ == "__main__":
    app()
