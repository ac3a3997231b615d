"""What every command shares: options, the flags that override settings, and the mapping of
domain exceptions to a one-line message and an exit code (never a traceback)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from mcp_lifecycle.cli import render
from mcp_lifecycle.cli.outcome import report_failure
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.settings.flags import Flags

logger = logging.getLogger("mcp_lifecycle.cli")

F = TypeVar("F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=0.1, help="Seconds to wait (default: from settings)."),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="Write it to PATH (whole, mode 600) instead of printing it.",
    ),
]
NoKillOption = Annotated[
    bool, typer.Option("--no-kill", help="Never SIGKILL; exit 7 if it does not stop.")
]

_CLICK_USAGE_EXIT = 2


class LifecycleGroup(TyperGroup):
    """Usage errors exit 5 (CONFIGURATION_ERROR), never 2: scripts read 2 as "not running"."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except TyperException as exc:
            _remap_usage_error(exc)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TyperException as exc:
            _remap_usage_error(exc)
            raise

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            # Asking for nothing is asking for help: print it and succeed, not a usage error.
            typer.echo(ctx.get_help())
            ctx.exit(0)
        if ctx.parent is None:
            args = hoist_global_options(self, ctx, args)
        return list(super().parse_args(ctx, args))


def _option_names(command: Any) -> dict[str, Any]:
    return {
        name: param
        for param in command.params
        if param.param_type_name == "option"
        for name in (*param.opts, *param.secondary_opts)
    }


def hoist_global_options(group: Any, ctx: Any, args: list[str]) -> list[str]:
    """Move the group's own options given after the command name to before it, so that
    `my-server status --port 9000` means `my-server --port 9000 status`. An option the command
    itself (or a subcommand on the way) declares stays where it is: the command's own wins."""
    globals_ = _option_names(group)
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "--":
        option = globals_.get(args[index].split("=", 1)[0])
        takes_value = option is not None and not option.is_flag and "=" not in args[index]
        index += 2 if takes_value else 1
    if index >= len(args):
        return args
    head, rest = args[:index], args[index:]
    command: Any = group
    local: dict[str, Any] = {}
    moved: list[str] = []
    kept: list[str] = []
    position = 0
    while position < len(rest):
        word = rest[position]
        position += 1
        if word == "--":
            kept += [word, *rest[position:]]
            break
        if not word.startswith("-") or word == "-":
            if hasattr(command, "get_command"):  # a group: the word may be its subcommand
                sub = command.get_command(ctx, word)
                if sub is not None:
                    command = sub
                    local.update(_option_names(sub))
            kept.append(word)
            continue
        name = word.split("=", 1)[0]
        option = globals_.get(name)
        if option is None or name in local:
            kept.append(word)
            own = local.get(name)
            if own is not None and not own.is_flag and "=" not in word and position < len(rest):
                kept.append(rest[position])  # its value, even one that looks like an option
                position += 1
            continue
        moved.append(word)
        if not option.is_flag and "=" not in word and position < len(rest):
            moved.append(rest[position])
            position += 1
    return [*head, *moved, *kept]


def _remap_usage_error(exc: TyperException) -> None:
    # Typer's usage errors (unknown option, bad value, missing argument) carry Click's exit 2.
    if exc.exit_code == _CLICK_USAGE_EXIT:
        exc.exit_code = int(ExitCode.CONFIGURATION_ERROR)


def command_flags(ctx: Any) -> Flags:
    """The global flags of the command `ctx` belongs to."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Flags) else Flags()


def edge(fn: F) -> F:
    """Map domain exceptions to a one-line message and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # A server in the foreground may speak MCP on stdout: its errors go to stderr only.
        as_json = bool(kwargs.get("as_json")) and not kwargs.get("foreground")
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - each gets its one line
            code = report_failure(exc, as_json)
            if code is not None:
                raise typer.Exit(code) from None
        return None

    return wrapper  # type: ignore[return-value]


def fail(message: str, hint: str | None, code: int, as_json: bool, tail: str = "") -> None:
    render.error(message, hint, code, as_json, tail)
    raise typer.Exit(code)
