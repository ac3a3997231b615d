"""The author's code the commands call (the hooks), and how a command finds our `start`.

No Typer here: the factory holds these, and the hot path runs without Typer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings

Probe = Callable[[], "bool | str | None"]


class ServerHooks(NamedTuple):
    """The author's code the commands call."""

    start_handler: Callable[[], None] | None
    stop_handler: Callable[[int], None] | None
    reload_handler: Callable[[MCPServerSettings], None] | None
    server_version: str | None
    probes: dict[str, Probe]  # filled by `add_probe`


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
