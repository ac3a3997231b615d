"""What every command group of a server's CLI works with: its settings loader and the author's
code (the hooks), without knowing the factory that made them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from mcp_lifecycle.cli.errors import command_flags
from mcp_lifecycle.errors import ConfigurationError

if TYPE_CHECKING:
    from mcp_lifecycle.settings.fields import LifecycleFields
    from mcp_lifecycle.settings.loader import SettingsLoader
    from mcp_lifecycle.settings.model import MCPServerSettings, ResolvedSettings

Probe = Callable[[], "bool | str | None"]


@dataclass
class ServerHooks:
    """The author's code the commands call."""

    start_handler: Callable[[], None] | None = None
    stop_handler: Callable[[int], None] | None = None
    reload_handler: Callable[[MCPServerSettings], None] | None = None
    server_version: str | None = None
    probes: dict[str, Probe] = field(default_factory=dict)


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


def _start_subcommand(ctx: Any) -> list[str]:
    """The argv that reaches our `start` from the root, wherever the author mounted us."""
    names: list[str] = []
    current = ctx
    while current is not None and current.parent is not None:
        names.append(current.info_name or "")
        current = current.parent
    names.reverse()
    return [*names[:-1], "start", "--foreground"]


def start_command(ctx: Any) -> list[str]:
    from mcp_lifecycle.handoff import this_cli

    return this_cli(_start_subcommand(ctx))
