"""A small MCP server written only on the official SDK, as most servers out there are: it knows
nothing of mcp-lifecycle. `python notes_server.py` speaks MCP over stdio; with `--port N` it
serves Streamable HTTP on 127.0.0.1:N/mcp."""

import argparse
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes")
notes: list[str] = []


@server.tool()
def add_note(text: str) -> str:
    """Keep a note."""
    notes.append(text)
    return f"{os.environ.get('NOTES_TITLE', 'Notes')}: {len(notes)} kept"


@server.tool()
def list_notes() -> list[str]:
    """Every note kept since the server started."""
    return notes


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    port = parser.parse_args().port
    if port is None:
        server.run()
    else:
        server.run(transport="streamable-http", host="127.0.0.1", port=port)
