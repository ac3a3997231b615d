"""The start handshake, both ends of it.

A detached `start` runs the same CLI again as `start --foreground` in a new session, and hands
it three things in its environment (`to_env`; the server takes them with `take_from_environ`):
the flags it was given, so both resolve the same settings; the write end of a pipe; and the
log file its stdout and stderr point at.

The server answers on the pipe with one line (`ReadyPipe`): READY, or FAILED <exit code>
<message> [TAB <hint>]. `await_ready` reads it; a pipe closed without a line means the server
died first.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from mcp_lifecycle.settings.flags import Flags

READY_FD_ENV = "MCP_LIFECYCLE_READY_FD"
LOG_ENV = "MCP_LIFECYCLE_LOG"
FLAGS_ENV = "MCP_LIFECYCLE_FLAGS"
# `start --watch`: the paths whose changes restart the server (JSON list).
WATCH_ENV = "MCP_LIFECYCLE_WATCH"
# Set for a server run by our supervisor: the supervisor's PID (it holds the server's claim).
SUPERVISOR_ENV = "MCP_LIFECYCLE_SUPERVISOR"
# Set for a fleet member's server process: its entry of the fleet file (JSON). Left in place
# for a supervisor that runs it again; never passed on to the server we did not write.
FLEET_ENTRY_ENV = "MCP_LIFECYCLE_FLEET_ENTRY"
_READY = "READY"
_FAILED = "FAILED"
# How the server records, for `reload`, that its settings were applied but its hook raised.
HOOK_FAILED = "the new settings are applied, but the server's reload hook failed"


# -- the starter's end -------------------------------------------------------------------------


def this_cli(arguments: list[str]) -> list[str]:
    """The argv that runs this same CLI again, in a fresh interpreter, with `arguments`:
    `python -m pkg.mod` when it was run so (relative imports need the module), else
    `python /abs/path/to/script`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", None):
        module = spec.name.removesuffix(".__main__")
        return [sys.executable, "-m", module, *arguments]
    return [sys.executable, os.path.abspath(sys.argv[0]), *arguments]


def to_env(
    flags: Flags,
    ready_fd: int | None = None,
    log: str | None = None,
    watch: list[str] | None = None,
) -> dict[str, str]:
    """The variables that hand `flags` (and, for a detached start, the pipe and the log; for
    `start --watch`, the paths to watch) to a server started as `start --foreground`."""
    env = {FLAGS_ENV: flags.to_json()}
    if ready_fd is not None:
        env[READY_FD_ENV] = str(ready_fd)
    if log is not None:
        env[LOG_ENV] = log
    if watch is not None:
        env[WATCH_ENV] = json.dumps(watch)
    return env


class Answer(NamedTuple):
    """What the server said: ready, or failed with an exit code, a message and a hint. A
    server that died without a word failed with no code."""

    ready: bool
    code: int | None = None
    message: str = ""
    hint: str = ""


def await_ready(
    fd: int, timeout: float, cancelled: Callable[[], bool] | None = None
) -> Answer | None:
    """The server's answer on the pipe `fd`; None if none came within `timeout` seconds, or
    once `cancelled()` says to stop waiting."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (cancelled is not None and cancelled()):
            return None
        tick = remaining if cancelled is None else min(remaining, 0.05)
        readable, _, _ = select.select([fd], [], [], tick)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buffer += chunk
    return _parse(buffer.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip())


def _parse(line: str) -> Answer:
    if line == _READY:
        return Answer(ready=True)
    prefix, _, detail = line.partition(" ")
    code_text, _, reason = detail.partition(" ")
    reason, _, hint = reason.partition("\t")
    if prefix == _FAILED and code_text.isdigit() and reason:
        return Answer(ready=False, code=int(code_text), message=reason, hint=hint)
    return Answer(ready=False)


# -- the server's end --------------------------------------------------------------------------


class Handed(NamedTuple):
    """What a starter handed to this process: nothing of it for a plain `start --foreground`."""

    flags: Flags
    ready_fd: int | None
    log: str | None
    watch: list[str] | None = None
    supervisor: int | None = None  # we are the server a supervisor runs


def take_from_environ() -> Handed:
    """Take the handoff out of the environment: it is ours alone, not for the server's own
    children."""
    ready_fd = os.environ.pop(READY_FD_ENV, None)
    watch = json.loads(os.environ.pop(WATCH_ENV, "null"))
    supervisor = os.environ.pop(SUPERVISOR_ENV, "")
    return Handed(
        Flags.from_json(os.environ.pop(FLAGS_ENV, "")),
        int(ready_fd) if ready_fd and ready_fd.isdigit() else None,
        os.environ.pop(LOG_ENV, None),
        [str(path) for path in watch] if isinstance(watch, list) else None,
        int(supervisor) if supervisor.isdigit() else None,
    )


class ReadyPipe:
    """The server's end of the pipe: one line is written, once, whatever the threads do."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        if fd is not None:
            os.set_inheritable(fd, False)  # the server's own children must not hold it open

    def send_ready(self) -> None:
        self._send(_READY)

    def send_failure(self, code: int, message: str, hint: str | None = None) -> None:
        self._send(f"{_FAILED} {code} {message}\t{hint or ''}")

    def send_stopped(self) -> None:
        """A SIGTERM or SIGINT came before READY: only a `start` still waiting hears it."""
        self.send_failure(
            1,
            "the server was told to stop (SIGTERM or SIGINT) before it was ready",
            "something stopped it while it started (a `stop`?); run `start` again",
        )

    def close(self) -> None:
        fd = self._take()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def forget_in_child(self) -> None:
        """In a forked child: a lock held at fork time would never be released, and the
        child's copy of the pipe must not keep the starter waiting."""
        self._lock = threading.Lock()
        self.close()

    def _take(self) -> int | None:
        with self._lock:
            fd, self._fd = self._fd, None
        return fd

    def _send(self, line: str) -> None:
        fd = self._take()
        if fd is None:
            return
        # A starter that went away is no error.
        with contextlib.suppress(OSError):
            os.write(fd, (line.replace("\n", " ").rstrip("\t") + "\n").encode())
        with contextlib.suppress(OSError):
            os.close(fd)
