"""Inside the server process of a fleet member: the start handlers for servers we did not write.

The runtime around them is the one every server of ours has (lock, PID file, snapshot,
heartbeat, signals, supervisor): only what runs inside differs.

- An HTTP server's command runs as our child, in our process group (so `stop` reaches it with
  us); we are READY once an MCP handshake at its URL succeeds, and fail when it exits.
- A stdio server is bridged: the official SDK's client talks to it over stdin/stdout, and a
  low-level SDK server of ours serves Streamable HTTP, forwarding every request to it. Its
  port gets our guard (the bearer token), /healthz and /readyz.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp_lifecycle.errors import ServerFailed
from mcp_lifecycle.files import kernel
from mcp_lifecycle.fleet.spec import ServerEntry

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

logger = logging.getLogger(__name__)

_HANDSHAKE_EVERY_SECONDS = 0.2


def handler_for(entry: ServerEntry) -> Callable[[], None]:
    if entry.kind == "stdio":
        return lambda: serve_bridge(entry)
    return lambda: run_http_command(entry)


def child_env(entry: ServerEntry) -> dict[str, str]:
    """The file's `env` over ours (without the entry, which is for our processes alone: the
    rest of the handoff was taken out of the environment already)."""
    from mcp_lifecycle.handoff import FLEET_ENTRY_ENV

    ours = {key: value for key, value in os.environ.items() if key != FLEET_ENTRY_ENV}
    return {**ours, **entry.env}


def _require_program(entry: ServerEntry) -> None:
    """A command that cannot run is that, in one line (not a traceback in the log)."""
    import shutil

    program = entry.command[0]
    where = os.path.join(entry.cwd or ".", program) if os.sep in program else None
    found = (
        where
        if where and os.access(where, os.X_OK)
        else shutil.which(program, path=child_env(entry).get("PATH"))
    )
    if not found:
        raise ServerFailed(
            f"cannot run {program!r} for {entry.name}: not found"
            + ("" if os.sep in program else " on PATH"),
            hint="check `command` in the fleet file (is the program installed?)",
        )


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# -- an HTTP server: our child, ready when it answers MCP -----------------------------------------


def run_http_command(entry: ServerEntry) -> None:
    from mcp_lifecycle.server.readiness import notify_ready
    from mcp_lifecycle.server.runtime import current_runtime
    from mcp_lifecycle.transports.probe import handshake

    assert entry.url is not None
    runtime = current_runtime()
    _require_program(entry)
    # What the server we run leaves behind (a wrapper's child, a stdio server's helpers) is
    # then ours to end. Here, in the server process: a supervisor would not reap them.
    kernel.become_subreaper()
    # Our handshakes would fill the server's log with a line per HTTP request.
    for chatty in ("httpx", "httpx2", "mcp.client"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    port = urlsplit(entry.url).port
    if port is not None:
        _refuse_taken_port(entry, port)
    child = _spawn(entry)
    stopping = threading.Event()

    def stop(force: bool) -> None:
        stopping.set()
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL if force else signal.SIGTERM)

    runtime.set_graceful_stop(stop)
    try:
        while runtime.state == "starting" and child.poll() is None and not stopping.is_set():
            answered, _ = handshake(entry.url, f"at {entry.url}", timeout=2.0)
            if answered and _served_by_us(port):
                notify_ready()
            else:
                time.sleep(_HANDSHAKE_EVERY_SECONDS)
        code = child.wait()
    finally:
        runtime.set_graceful_stop(None)
        if child.poll() is None:  # unwound by a failure of ours: the child goes with us
            child.kill()
            child.wait()
        _end_what_it_left()
    if stopping.is_set():
        return
    raise ServerFailed(
        f"{entry.name}'s command {describe_exit(code)}",
        hint="its own output is in the server's log (`mcp-lifecycle logs NAME`)",
    )


def _refuse_taken_port(entry: ServerEntry, port: int) -> None:
    """Whoever answers the URL before we run the command is not our server: a handshake with
    it would count as ours being ready."""
    from mcp_lifecycle.transports import ports

    if ports.taken(urlsplit(entry.url or "").hostname or "127.0.0.1", port):
        raise ServerFailed(
            f"port {port} of {entry.url} is already taken by "
            f"{ports.describe(ports.listener(port))}, before {entry.name} ran",
            hint="stop what holds it, or give the server another port in the fleet file",
        )


def _served_by_us(port: int | None) -> bool:
    """Is the listener on `port` one of our processes (the command, or one it started)?
    Unknown (another user's sockets may be hidden from us) counts as ours: the port was free
    when the command started."""
    from mcp_lifecycle.transports import ports

    holder = ports.listener(port) if port else None
    return holder is None or ports.serves_for(holder, os.getpid())


def _end_what_it_left() -> None:
    """A server we did not write may leave children behind (a wrapper script that exits, a
    stdio server's helpers in a session of their own): we are their subreaper, so even the
    orphans among them are under us."""
    from mcp_lifecycle.control.process import end_descendants

    end_descendants(os.getpid(), grace=3.0)


def _spawn(entry: ServerEntry) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            _dying_with_us(list(entry.command)),
            cwd=entry.cwd,
            env=child_env(entry),
            stdin=subprocess.DEVNULL,
            # stdout and stderr are ours: the server's log.
        )
    except OSError as exc:
        raise ServerFailed(
            f"cannot run {entry.command[0]!r} for {entry.name}: {exc.strerror or exc}",
            hint="check `command` in the fleet file (is the program installed, on PATH?)",
        ) from None


# -- a stdio server, bridged to Streamable HTTP ---------------------------------------------------


class Bridge:
    """The upstream stdio server and what became of it."""

    def __init__(self, entry: ServerEntry) -> None:
        self.entry = entry
        self.lost: str | None = None  # why the upstream went away while we served
        self.failure: str | None = None  # why it never answered

    def app(self, http_path: str, host: str) -> Any:
        from mcp import types
        from mcp.server.lowlevel import Server

        def forward(request_type: Any, result_type: Any) -> Callable[..., Any]:
            async def handle(ctx: Any, params: Any) -> Any:
                upstream: ClientSession = ctx.lifespan_context
                return await upstream.send_request(request_type(params=params), result_type)

            return handle

        server: Server[Any] = Server(
            self.entry.name,
            lifespan=self._upstream,
            on_list_tools=forward(types.ListToolsRequest, types.ListToolsResult),
            on_call_tool=forward(types.CallToolRequest, types.CallToolResult),
            on_list_resources=forward(types.ListResourcesRequest, types.ListResourcesResult),
            on_list_resource_templates=forward(
                types.ListResourceTemplatesRequest, types.ListResourceTemplatesResult
            ),
            on_read_resource=forward(types.ReadResourceRequest, types.ReadResourceResult),
            on_list_prompts=forward(types.ListPromptsRequest, types.ListPromptsResult),
            on_get_prompt=forward(types.GetPromptRequest, types.GetPromptResult),
            on_completion=forward(types.CompleteRequest, types.CompleteResult),
        )
        return server.streamable_http_app(streamable_http_path=http_path, host=host)

    @contextlib.asynccontextmanager
    async def _upstream(self, _server: Any) -> AsyncIterator[ClientSession]:
        """Run during the app's lifespan: uvicorn serves (and we say READY) only once the
        stdio server answered its handshake."""
        import anyio
        import psutil
        from mcp import Client, StdioServerParameters

        entry = self.entry
        command = _dying_with_us(list(entry.command))
        parameters = StdioServerParameters(
            command=command[0], args=command[1:], env=child_env(entry), cwd=entry.cwd
        )
        before = {child.pid for child in psutil.Process().children()}
        answered = False
        try:
            async with Client(parameters) as client, anyio.create_task_group() as tasks:
                answered = True
                started = [c for c in psutil.Process().children() if c.pid not in before]
                upstream = started[0] if started else None
                if upstream is not None:
                    tasks.start_soon(self._watch, upstream)
                logger.info("%s answers over stdio", entry.name)
                try:
                    yield client.session
                finally:
                    tasks.cancel_scope.cancel()
                    _end_group(upstream)
        except Exception as exc:
            if not answered:
                from mcp_lifecycle.transports.probe import root_cause

                self.failure = (
                    f"{entry.name} did not answer MCP over stdio ({root_cause(exc)}); "
                    "its own words, if any, are just above in its log"
                )
                logger.error("%s", self.failure)
                logger.debug("the handshake failed", exc_info=True)
            raise

    async def _watch(self, upstream: Any) -> None:
        """The stdio server exiting on its own ends the bridge (with a failure, so that a
        restart policy brings both back)."""
        import anyio
        import psutil

        from mcp_lifecycle.server.runtime import current_runtime

        runtime = current_runtime()
        while True:
            await anyio.sleep(0.5)
            try:
                gone = upstream.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone and runtime.state in ("starting", "ready"):
                self.lost = f"{self.entry.name}'s command exited"
                logger.error("%s; the bridge stops", self.lost)
                os.kill(os.getpid(), signal.SIGTERM)
                return


def _end_group(upstream: Any) -> None:
    """SIGTERM the stdio server's process group (the SDK made it a group of its own) while its
    leader still runs: its helpers go with it, and the group ID cannot be someone else's."""
    import psutil

    if upstream is None:
        return
    with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
        if upstream.is_running() and upstream.status() != psutil.STATUS_ZOMBIE:
            os.killpg(upstream.pid, signal.SIGTERM)


# A server we did not write must not outlive the process of ours that runs it, even one killed
# outright (SIGKILL after a stop timed out): on Linux the kernel kills it when we die (the
# setting survives exec). What it started itself is ended by `end_descendants`, or by `stop`.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys;"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0);"
    "os.getppid() == int(sys.argv[1]) or sys.exit(1);"
    "os.execvp(sys.argv[2], sys.argv[2:])"
)


def _dying_with_us(command: list[str]) -> list[str]:
    if not kernel.PARENT_DEATH_SIGNAL:
        return command
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


class _QuietLifespanFailure(logging.Filter):
    """uvicorn logs a failed lifespan with its traceback; the bridge said why in one line."""

    def __init__(self, bridge: Bridge) -> None:
        super().__init__()
        self.bridge = bridge

    def filter(self, record: logging.LogRecord) -> bool:
        # As exc_info, or (Starlette's lifespan.startup.failed) as the message's text.
        if self.bridge.failure is not None and (record.exc_info or "Traceback" in str(record.msg)):
            record.exc_info = None
            record.msg, record.args = "the bridge could not start", ()
        return True


def serve_bridge(entry: ServerEntry) -> None:
    from mcp_lifecycle.server.runtime import current_runtime
    from mcp_lifecycle.transports.http_server import serve_asgi

    settings = current_runtime().settings
    _require_program(entry)
    # What the server we run leaves behind (a wrapper's child, a stdio server's helpers) is
    # then ours to end. Here, in the server process: a supervisor would not reap them.
    kernel.become_subreaper()
    bridge = Bridge(entry)
    quiet = _QuietLifespanFailure(bridge)
    logging.getLogger("uvicorn.error").addFilter(quiet)
    hint = "its own output is in the server's log (`mcp-lifecycle logs NAME`)"
    try:
        serve_asgi(bridge.app(settings.http_path, settings.host))
    except ServerFailed:
        if bridge.failure is not None:
            raise ServerFailed(bridge.failure, hint=hint) from None
        raise
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
        _end_what_it_left()
    if bridge.lost is not None:
        raise ServerFailed(bridge.lost, hint=hint)
