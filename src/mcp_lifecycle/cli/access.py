"""`client-config` and `rotate-token`: what an MCP client needs, and a fresh token."""

import typer

from mcp_lifecycle.cli import render
from mcp_lifecycle.cli.commands import Commands
from mcp_lifecycle.cli.errors import JsonOption, OutputOption, edge
from mcp_lifecycle.errors import ConfigurationError

PASTE_WHERE = (
    "Paste it into your MCP client's configuration: Claude Code reads .mcp.json in your "
    "project, Claude Desktop claude_desktop_config.json, VS Code .vscode/mcp.json (there the "
    'key is "servers" instead of "mcpServers"). It holds a secret: keep it out of git.'
)


class AccessCommands(Commands):
    def register(self, app: typer.Typer) -> None:
        name = self.name
        app.command(
            "client-config",
            help="Print what an MCP client needs to use this server: its URL and bearer "
            "token, as the mcpServers block of .mcp.json. Only you can read the token.\n\n"
            f"Example: {name} client-config --output .mcp.json",
        )(edge(self.client_config))
        app.command(
            "rotate-token",
            help="Replace the server's bearer token; a running server takes the new one on "
            f"`reload`, and clients need the new `client-config`.\n\nExample: {name} "
            f"rotate-token && {name} reload",
        )(edge(self.rotate_token))

    def client_config(
        self, ctx: typer.Context, as_json: JsonOption = False, output: OutputOption = None
    ) -> None:
        from mcp_lifecycle.files.paths import ServerPaths
        from mcp_lifecycle.files.private import ensure_cache_root
        from mcp_lifecycle.transports.access import (
            client_entry,
            ensure_token,
            save_client_config,
        )

        settings = self.running(ctx)
        if settings.url is None:
            raise ConfigurationError(
                f"{settings.server_name} serves no HTTP endpoint, so an MCP client starts it "
                "itself (with `start --foreground`)",
                hint="set `port` to serve it over HTTP",
            )
        paths = ServerPaths.for_settings(settings)
        token = None
        if self.settings(ctx).auth == "token":
            ensure_cache_root(paths.cache_root)
            token = ensure_token(paths.token)  # the server takes this one when it starts
        config = {"mcpServers": {settings.server_name: client_entry(settings.url, token)}}
        if output is not None:
            save_client_config(config, output)
            typer.echo(f"Wrote {output} (mode 600: it holds the token).")
            return
        if as_json:
            render.echo_json(config)
            return
        typer.echo(PASTE_WHERE, err=True)
        render.echo_json(config)

    def rotate_token(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.files.paths import ServerPaths
        from mcp_lifecycle.files.pidfile import lock_is_held
        from mcp_lifecycle.files.private import ensure_cache_root
        from mcp_lifecycle.transports.access import rotate_token

        settings = self.running(ctx)
        paths = ServerPaths.for_settings(settings)
        ensure_cache_root(paths.cache_root)
        rotate_token(paths.token)
        running = lock_is_held(paths.lock)
        if as_json:
            render.echo_json({"token_file": str(paths.token), "running": running})
            return
        typer.echo(f"Wrote a new token to {paths.token} (mode 600).")
        if running:
            typer.echo(
                f"The running server still takes the old one: run `{settings.server_name} "
                "reload`, then give your clients the new `client-config`."
            )
