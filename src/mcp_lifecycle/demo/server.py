"""A real MCP server wired through MCPServerCLIFactory: the three lines, plus one own command.

The MCP SDK and the tool code are imported only where they run (the server process and the
`call` command), so `status` and `stop` stay fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mcp_lifecycle.cli import MCPServerCLIFactory
from mcp_lifecycle.transports.http_server import streamable_http_handler

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

SERVER_NAME = "mcp-lifecycle-demo"


def build_server() -> MCPServer[Any]:
    from mcp_lifecycle.demo.tools import build_server as build

    return build()


factory = MCPServerCLIFactory(
    SERVER_NAME,
    settings="mcp_lifecycle.demo.settings:DemoSettings",
    start_handler=streamable_http_handler(build_server),
)
app = factory.create_app()


@app.command()
def call(
    tool: Annotated[str, typer.Argument(help="The tool's name, e.g. add.")],
    arguments: Annotated[
        str, typer.Argument(help='JSON arguments, e.g. \'{"a": 2, "b": 3}\'.')
    ] = "{}",
) -> None:
    """Call one of the running server's tools with a real MCP client.

    Example: mcp-lifecycle-demo call add '{"a": 2, "b": 3}'
    """
    import anyio

    try:
        args = json.loads(arguments)
    except ValueError as exc:
        typer.echo(f"Error: arguments are not JSON: {exc}", err=True)
        raise typer.Exit(5) from None
    url = factory.load_settings().url  # this invocation's flags included: `--port N call ...`

    async def run() -> Any:
        async with factory.client() as client:  # with the server's token
            return await client.call_tool(tool, args)

    try:
        result = anyio.run(run)
    except Exception as exc:  # noqa: BLE001 - any client failure becomes one line
        typer.echo(f"Error: could not call {tool} at {url}: {exc}", err=True)
        typer.echo("Hint: is the server running? Try `mcp-lifecycle-demo status`.", err=True)
        raise typer.Exit(1) from None
    texts = [getattr(item, "text", str(item)) for item in result.content]
    typer.echo("\n".join(texts) if texts else json.dumps(result.structured_content))
    if result.is_error:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
