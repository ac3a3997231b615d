"""Writing to the terminal, as click.echo and click.style do it, without importing either: the
hot commands (`status`, `health`, `stop`) print through this and never load Typer or Click.

Colour goes only to a terminal: on a pipe or a file the escapes are taken out again (as
click.echo does), and NO_COLOR (https://no-color.org) turns it off everywhere.
"""

from __future__ import annotations

import os
import re
import sys

_COLOURS = {"red": 31, "green": 32, "yellow": 33}
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def style(text: str, fg: str | None = None, bold: bool = False, dim: bool = False) -> str:
    """The escapes click.style writes: the colour, then bold, then dim."""
    if os.environ.get("NO_COLOR"):
        return text
    codes = [str(_COLOURS[fg])] if fg else []
    codes += ["1"] if bold else []
    codes += ["2"] if dim else []
    return "".join(f"\x1b[{code}m" for code in codes) + f"{text}\x1b[0m"


def echo(message: str = "", err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # pythonw, or a closed stream
        return
    if not _is_terminal(stream):
        message = _ESCAPES.sub("", message)
    stream.write(f"{message}\n")
    stream.flush()


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
