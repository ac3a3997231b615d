"""What every command group of a server's CLI works with: its settings loader and the author's
code (the hooks), without knowing the factory that made them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from mcp_lifecycle.cli.errors import command_flags
from mcp_lifecycle.cli.hooks import ServerHooks
from mcp_lifecycle.errors import ConfigurationError

if TYPE_CHECKING:
    from mcp_lifecycle.settings.fields import LifecycleFields
    from mcp_lifecycle.settings.loader import SettingsLoader
    from mcp_lifecycle.settings.model import MCPServerSettings, ResolvedSettings


class Commands:
    """A group of commands of one server's CLI."""

    def __init__(self, loader: SettingsLoader, hooks: ServerHooks) -> None:
        self.loader = loader
        self.hooks = hooks

    @property
    def name(self) -> str:
        return self.loader.server_name

    def resolved(self, ctx: typer.Context) -> ResolvedSettings:
        """Every layer of this command's settings, validated."""
        return self.loader.resolve(command_flags(ctx))

    def settings(self, ctx: typer.Context) -> MCPServerSettings:
        return self.resolved(ctx).settings

    def running(self, ctx: typer.Context) -> LifecycleFields:
        """The lifecycle fields of the server the command acts on (found by name if need be;
        the user hears how on stderr)."""
        from mcp_lifecycle.control.discovery import locate

        located = locate(self.loader, command_flags(ctx))
        if located.note:
            typer.echo(located.note, err=True)
        return located.fields

    def require_handler(self) -> Callable[[], None]:
        if self.hooks.start_handler is None:
            raise ConfigurationError(
                f"{self.name} has no start handler",
                hint="pass start_handler= to MCPServerCLIFactory",
            )
        return self.hooks.start_handler
