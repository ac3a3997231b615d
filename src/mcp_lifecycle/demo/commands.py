"""The demo's own command: `call` a tool of the running server with a real MCP client.

In a module of its own, registered with `factory.add_command`: Typer (for its arguments) and
the MCP client are imported only when it runs.
"""

import json
from typing import Annotated, Any

import typer

from mcp_lifecycle.demo.server import factory


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
