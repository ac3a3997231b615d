"""The hot commands without Typer: `status`, `health` (no probe) and `stop`, when their command
line is plain, run here straight from `sys.argv`, with the same domain calls and the same
rendering as the Typer commands, so they answer alike (a test runs every combination through
both and compares).

Anything this module is not sure to read exactly as Typer would (help, an unknown or repeated
option, a value Typer would refuse, `--`, a server name that is not safe) is not answered here:
`run` returns None and the Typer app decides, with its own messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_lifecycle.settings.flags import Flags

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcp_lifecycle.settings.loader import SettingsLoader

_PORT = re.compile(r"[0-9]{1,5}")
_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")
# The root's options that take a value, and the setting each gives.
_VALUED = {
    "--log-level": "log_level",
    "--log-file": "log_file",
    "--cache-root": "cache_root",
    "--host": "host",
    "--port": "port",
    "--set": "set",
}
_COMMAND_OPTIONS = {
    "status": {"--json"},
    "health": {"--json"},
    "stop": {"--json", "--no-kill", "--timeout"},
}


class _Line:
    """A hot command line, read."""

    def __init__(self) -> None:
        self.command: str | None = None
        self.sets: list[tuple[str, str]] = []  # --set, in order
        self.named: dict[str, tuple[Any, str]] = {}  # setting: (value, flag)
        self.level: str | None = None
        self.verbose = False
        self.options: dict[str, Any] = {}

    @property
    def flags(self) -> Flags:
        """The flags, in the order the root callback sets them (the --set ones first, then
        the named options, which win)."""
        flags = Flags()
        for key, value in self.sets:
            flags.set(key, value, f"--set {key}")
        if self.level is not None:
            self.named["log_level"] = (self.level, "--verbose" if self.verbose else "--log-level")
        for setting in ("log_level", "json_logs", "log_file", "cache_root", "host", "port"):
            if setting in self.named:
                value, flag = self.named[setting]
                flags.set(setting, value, flag)
        return flags


def run(
    argv: list[str],
    loader: SettingsLoader,
    stop_handler: Callable[[int], None] | None,
) -> int | None:
    """Answer `argv` and give the exit code; None when Typer must answer it."""
    line = _read(argv)
    if line is None or line.command is None:
        return None
    from mcp_lifecycle.files.paths import server_name_problem

    if server_name_problem(loader.server_name) is not None:
        return None  # Typer's root callback says so, with its exit code
    from mcp_lifecycle.settings.flags import remember_invocation

    as_json = bool(line.options.get("--json"))
    flags = line.flags
    # As the root callback does: an author's stop_handler that loads the settings gets these.
    forget = remember_invocation(flags)
    try:
        if line.level is not None or (line.command == "stop" and stop_handler is not None):
            # Asked for, or the author's stop handler may log: set up now, as the root
            # callback does.
            from mcp_lifecycle.logs import configure_logging

            configure_logging((line.level or "WARNING").upper())
        # Otherwise logging (with threading: ~6 ms) is set up only if something logs, at
        # WARNING (`logs.configure_for_command`): a hot command that goes well logs nothing.
        return _answer(line, flags, loader, stop_handler, as_json)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - each gets its one line
        from mcp_lifecycle.cli.outcome import report_failure

        code = report_failure(exc, as_json)
        return 0 if code is None else code
    finally:
        forget()


def _answer(
    line: _Line,
    flags: Flags,
    loader: SettingsLoader,
    stop_handler: Callable[[int], None] | None,
    as_json: bool,
) -> int:
    from mcp_lifecycle.cli import render
    from mcp_lifecycle.cli.output import echo
    from mcp_lifecycle.control.discovery import locate

    located = locate(loader, flags)
    if located.note:
        echo(located.note, err=True)
    settings = located.fields
    if line.command == "status":
        from mcp_lifecycle.control.status import observe

        report = observe(settings).status
        render.status(report, as_json)
        return int(report.exit_code)
    if line.command == "health":
        from mcp_lifecycle.control.health import health_from_snapshot

        health = health_from_snapshot(settings)
        render.health(health, as_json)
        return int(health.exit_code)
    from mcp_lifecycle.control.stop import stop_server
    from mcp_lifecycle.files.paths import ServerPaths

    timeout = line.options.get("--timeout")
    result = stop_server(
        ServerPaths.for_settings(settings),
        timeout or settings.stop_timeout_seconds,
        kill=not line.options.get("--no-kill"),
        stop_handler=stop_handler,
    )
    render.stopped(settings.server_name, result, as_json)
    return 0


def _read(argv: list[str]) -> _Line | None:
    """The command line, read as Typer reads it; None at the first doubt."""
    line = _Line()
    given: set[str] = set()
    words = list(argv)
    while words:
        word = words.pop(0)
        if not word.startswith("-") or word == "-":
            if line.command is not None or word not in _COMMAND_OPTIONS:
                return None
            line.command = word
            continue
        name, has_value, value = word.partition("=")
        allowed = _COMMAND_OPTIONS.get(line.command or "", set())
        if name in given and name != "--set":
            return None  # Typer's last-one-wins is its to apply
        given.add(name)
        if name in ("--verbose", "-v") and not has_value:
            line.verbose = True
        elif name in ("--json-logs", "--text-logs") and not has_value:
            line.named["json_logs"] = (name == "--json-logs", "--json-logs")
        elif name in _VALUED:
            if not has_value:
                if not words or words[0].startswith("-"):
                    return None
                value = words.pop(0)
            if not _take(line, name, value):
                return None
        elif name in allowed and name in ("--json", "--no-kill") and not has_value:
            line.options[name] = True
        elif name in allowed and name == "--timeout":
            if not has_value:
                if not words:
                    return None
                value = words.pop(0)
            if not _SECONDS.fullmatch(value) or float(value) < 0.1:
                return None
            line.options[name] = float(value)
        else:
            return None  # --help, --probe, an option Typer will explain
    if line.verbose:
        if "--log-level" in given:
            return None  # which wins is Typer's to say
        line.level = "DEBUG"
    return line


def _take(line: _Line, name: str, value: str) -> bool:
    setting = _VALUED[name]
    if setting == "set":
        key, sep, item = value.partition("=")
        if not sep or not key.strip():
            return False
        line.sets.append((key.strip().replace("-", "_"), item))
    elif setting == "port":
        if not _PORT.fullmatch(value) or not 1 <= int(value) <= 65535:
            return False
        line.named["port"] = (int(value), "--port")
    elif setting == "log_level":
        from mcp_lifecycle.logs import LOG_LEVELS

        if value.upper() not in LOG_LEVELS:
            return False
        line.level = value
    elif setting in ("log_file", "cache_root"):
        if not value:
            return False
        line.named[setting] = (Path(value), name)
    else:
        line.named[setting] = (value, name)
    return True
