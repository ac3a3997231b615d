"""One MCP round trip in a fresh interpreter: connect and list tools (the probe's floor)."""

from __future__ import annotations

import sys

import anyio
from mcp import Client


async def main(url: str) -> None:
    async with Client(url) as client:
        await client.list_tools()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
