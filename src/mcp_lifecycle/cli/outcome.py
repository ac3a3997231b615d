"""What a failed command prints and exits with: one line (and a hint), never a traceback.

Shared by the Typer commands (`errors.edge`) and the hot path (`fast`), which must answer alike.
"""

from __future__ import annotations

import os

from mcp_lifecycle.cli import render
from mcp_lifecycle.errors import LifecycleError, ServerFailed, os_error
from mcp_lifecycle.exit_codes import ExitCode


def report_failure(exc: BaseException, as_json: bool) -> int | None:
    """Print `exc` for a person (or as JSON) and give the exit code; None when there is nothing
    to say (whoever read our output went away, as `| head` does: what the command did stands).
    Anything but an Exception or a KeyboardInterrupt is not ours to catch: it is raised again."""
    if isinstance(exc, LifecycleError):
        tail = exc.log_tail if isinstance(exc, ServerFailed) else ""
        render.error(exc.message, exc.hint, int(exc.exit_code), as_json, tail)
        return int(exc.exit_code)
    if isinstance(exc, BrokenPipeError):
        _silence_output()
        return None
    if isinstance(exc, OSError):
        error = os_error(exc)
        render.error(error.message, error.hint, int(error.exit_code), as_json)
        return int(error.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        render.error("interrupted", None, int(ExitCode.GENERAL_ERROR), as_json)
        return int(ExitCode.GENERAL_ERROR)
    if not isinstance(exc, Exception):
        raise exc
    import logging  # only here: the hot commands' failures (not running, ...) never need it

    logging.getLogger("mcp_lifecycle.cli").debug("unexpected error", exc_info=exc)
    render.error(
        f"{type(exc).__name__}: {exc}",
        "this is a bug: run again with -v for the traceback, and report it",
        int(ExitCode.GENERAL_ERROR),
        as_json,
    )
    return int(ExitCode.GENERAL_ERROR)


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null, so the final flush at exit cannot fail too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
