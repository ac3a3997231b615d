"""MCP over Streamable HTTP: a ready-made start handler and the live MCP probe.

Importing this module is cheap; the MCP SDK and uvicorn are imported only inside the functions
that serve or probe, so `status` and `stop` never pay for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

from mcp_lifecycle.errors import ConfigurationError, ServerFailed
from mcp_lifecycle.transports.endpoints import HEALTHZ, READYZ

if TYPE_CHECKING:
    import logging
    import socket

    from mcp.server.mcpserver import MCPServer

    from mcp_lifecycle.server.runtime import ServerRuntime


def streamable_http_handler(build_server: Callable[[], MCPServer[Any]]) -> Callable[[], None]:
    """A start handler that serves the server `build_server()` returns over Streamable HTTP.

    `build_server` is called only in the server process, so the CLI's other commands never
    import the MCP SDK or the server's tool code.
    """

    def run() -> None:
        serve_streamable_http(build_server())

    return run


def serve_streamable_http(server: MCPServer[Any]) -> None:
    """Serve an official-SDK MCPServer over Streamable HTTP until SIGTERM/SIGINT."""
    settings = _http_settings()
    serve_asgi(
        server.streamable_http_app(streamable_http_path=settings.http_path, host=settings.host)
    )


def fastmcp_handler(build_server: Callable[[], Any]) -> Callable[[], None]:
    """A start handler for a server built with the `fastmcp` package (`pip install
    mcp-lifecycle[fastmcp]`): its ASGI app on our uvicorn server, so SIGTERM runs the app's
    lifespan teardown and our cleanup (fastmcp's own `run()` skips them)."""

    def run() -> None:
        server = build_server()
        serve_asgi(server.http_app(path=_http_settings().http_path))

    return run


def _http_settings() -> Any:
    from mcp_lifecycle.server.runtime import current_runtime

    settings = current_runtime().settings
    if settings.port is None:
        raise ConfigurationError(
            "an HTTP server needs a port",
            hint="set `port` in settings/<server>.yaml or MCP_SERVER_PORT",
        )
    return settings


def serve_asgi(app: Any) -> None:
    """Serve an MCP ASGI app on our own uvicorn.Server until SIGTERM/SIGINT, with /healthz and
    /readyz added, and report ready once the socket serves.

    uvicorn's own signal capture is switched off: after a shutdown it replays the caught
    SIGTERM, so the process would die with 143 before the runtime's cleanup (PID file, lock,
    final snapshot) ran, as it does under `mcp.run()`. Our SignalHandler asks it to drain
    instead, and nothing is re-raised.
    """
    import asyncio

    import uvicorn

    from mcp_lifecycle.server.readiness import notify_ready
    from mcp_lifecycle.server.runtime import current_runtime

    runtime = current_runtime()
    settings = _http_settings()

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                notify_ready()

        def request_stop(self, force: bool) -> None:
            """From the signal handler: drain first (the loop runs in this very thread, so
            only schedule it), end at once on a repeat signal."""
            if force:
                self.should_exit = True
                self.force_exit = True
                return
            try:
                loop.call_soon_threadsafe(drain.begin, self)
            except RuntimeError:  # the loop has already ended: nothing left to drain
                self.should_exit = True

    # Bind first, ourselves: a port that is taken is then reported as exactly that, and an
    # application that fails its start-up as that.
    from mcp_lifecycle.transports.access import allowed_hosts, allowed_origins

    sock = _bind(settings.host, settings.port)
    _add_probe_routes(app, runtime)
    hosts = allowed_hosts(settings.host, settings.port, settings.allowed_hosts)
    # Half the stop timeout (as it is when the stop comes) to let clients finish, a third
    # for uvicorn's own shutdown, the rest to spare.
    drain = Drain(app, settings.http_path, budget=lambda: runtime.settings.stop_timeout_seconds / 2)
    # The guard outermost: a request without the token never counts as a client to drain for
    # (a stranger could otherwise fill the table of known clients and lengthen a stop).
    guarded = Guard(
        drain,
        open_paths=(HEALTHZ, READYZ),
        token=lambda: runtime.token,
        hosts=hosts,
        origins=allowed_origins(hosts),
    )
    config = uvicorn.Config(
        guarded,
        host=settings.host,
        port=settings.port,
        log_config=None,
        lifespan="on",
        # Long-lived MCP streams would hold shutdown forever; leave `stop` time to spare.
        timeout_graceful_shutdown=settings.stop_timeout_seconds / 3,
    )
    import logging

    for name in ("uvicorn.access", "uvicorn.error"):  # the error log has the WebSocket lines
        logging.getLogger(name).addFilter(hide_query)
    uvicorn_server = _Server(config)
    loop = asyncio.new_event_loop()
    runtime.set_graceful_stop(uvicorn_server.request_stop)

    async def serve() -> None:
        ticker = asyncio.create_task(_tick(runtime))
        try:
            await uvicorn_server.serve(sockets=[sock])
        finally:
            ticker.cancel()

    try:
        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            runner.run(serve())
    except SystemExit:
        raise ServerFailed(
            "the MCP application failed to start (its lifespan raised); see the log",
            hint="the log shows the application's own error",
        ) from None
    finally:
        runtime.set_graceful_stop(None)
        sock.close()


def hide_query(record: logging.LogRecord) -> bool:
    """A filter for uvicorn's request lines (HTTP requests in its access log, WebSocket
    handshakes in its error log), which write each request's path with its query string: a
    client that puts the token there (refused: only the header counts) would have it written
    to the log. The log shows that a query was sent, not what it said."""
    if isinstance(record.args, tuple) and any(map(_has_query, record.args)):
        record.args = tuple(
            f"{arg.partition('?')[0]}?(query hidden)" if _has_query(arg) else arg
            for arg in record.args
        )
    return True


def _has_query(arg: object) -> TypeGuard[str]:
    """A request target with a query string, as uvicorn passes it to its log lines: whatever
    form the client sent it in (`/mcp?...`, `http://host/mcp?...`, `mcp?...`); a target holds
    no space, a message does."""
    return isinstance(arg, str) and "?" in arg and " " not in arg


class Guard:
    """ASGI middleware: only the owner's clients, and no web page, may use the server.

    A `Host` the server does not serve gets 421 and a foreign `Origin` 403, as the official
    SDK answers (DNS rebinding: a page that points its own name at 127.0.0.1 must not reach
    a local server); every MCP request must carry the server's bearer token in an
    `Authorization` header (401 with `WWW-Authenticate: Bearer` otherwise; a token in the
    query string does not count). A WebSocket handshake is held to the same rules, and refused
    with 403 (an app of an author's may serve WebSockets). /healthz and /readyz stay open:
    probes need them, and they reveal only a state. One middleware for every handler (SDK,
    FastMCP, the stdio bridge): the SDK's own `token_verifier` needs an OAuth authorization
    server to point at.
    """

    def __init__(
        self,
        app: Any,
        *,
        open_paths: tuple[str, ...],
        token: Callable[[], str | None],
        hosts: set[str] | None,
        origins: set[str],
    ) -> None:
        self.app = app
        self.open_paths = open_paths
        self.token = token
        self.hosts = {host.lower().encode() for host in hosts} if hosts is not None else None
        self.origins = {origin.lower().encode() for origin in origins}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or self._probe(scope):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(dict(scope.get("headers") or ()))
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # the handshake's `websocket.connect`
            await send({"type": "websocket.close", "code": 1008})  # 403 to the handshake
        else:
            await _answer(send, *refusal)

    def _probe(self, scope: Any) -> bool:
        """A probe's request: only a GET (or HEAD) of an open path, so that no other method or
        a WebSocket there can fall through to a route of the app's."""
        return (
            scope["type"] == "http"
            and scope.get("method") in ("GET", "HEAD")
            and scope.get("path") in self.open_paths
        )

    def _refusal(self, headers: dict[bytes, bytes]) -> tuple[int, str, str | None] | None:
        """Why a request is refused (status, message, `WWW-Authenticate` error), or None."""
        import hmac

        host = headers.get(b"host", b"").lower()
        if self.hosts is not None and host not in self.hosts:
            return 421, "this server does not serve that host name", None
        origin = headers.get(b"origin")
        if origin is not None and origin.lower() not in self.origins:
            return 403, "requests from that origin are not allowed", None
        expected = self.token()
        if expected is not None:
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not given.strip():
                return 401, "a bearer token is required", ""
            if not hmac.compare_digest(given.strip(), expected.encode()):
                return 401, "the token is not valid", "invalid_token"
        return None


async def _answer(send: Any, status: int, message: str, challenge: str | None = None) -> None:
    import json

    headers = [(b"content-type", b"application/json")]
    if challenge is not None:
        value = 'Bearer realm="mcp"' + (f', error="{challenge}"' if challenge else "")
        headers.append((b"www-authenticate", value.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})


class Drain:
    """ASGI middleware for a graceful stop that keeps its promise to clients.

    On SIGTERM the server stops taking new clients (a request on a connection it has not seen
    before gets 503, and /readyz already says not ready), but keeps serving the clients it has:
    the official client sends a follow-up request right after a tool's answer (it lists tools
    to check the result), which a server that stopped listening would refuse, losing the
    answer. A client is known by its connection (protocol 2026-07-28 has no sessions) or, on
    older revisions, by its `Mcp-Session-Id`. Once no request has been in flight for a
    moment, or half the stop timeout has passed, uvicorn is told to exit.
    """

    IDLE_SECONDS = 0.5  # what counts as "the clients went quiet"
    _REMEMBERED = 4096  # connections remembered at most (the oldest are forgotten)

    def __init__(self, app: Any, mcp_path: str, budget: Callable[[], float]) -> None:
        self.app = app
        self.mcp_path = mcp_path
        self.budget = budget
        self.draining = False
        self.in_flight = 0
        self.last_activity = 0.0
        self._known: dict[Any, None] = {}  # connections seen, in order (a bounded set)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import time

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = tuple(scope.get("client") or ())
        if self.draining:
            known = client in self._known or _has_session(scope)
            if scope.get("path") == self.mcp_path and not known:
                await _refuse_new_client(send)
                return
        else:
            self._remember(client)
        # Long-lived GET streams (server-to-client notifications) never end by themselves:
        # they do not hold the drain open.
        counted = scope.get("method") != "GET"
        if counted:
            self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            if counted:
                self.in_flight -= 1
            self.last_activity = time.monotonic()

    def _remember(self, client: Any) -> None:
        self._known.pop(client, None)
        self._known[client] = None
        if len(self._known) > self._REMEMBERED:
            del self._known[next(iter(self._known))]

    def begin(self, server: Any) -> None:
        import asyncio

        if not self.draining:
            self.draining = True
            self._task = asyncio.get_running_loop().create_task(self._wait(server))

    async def _wait(self, server: Any) -> None:
        import asyncio
        import time

        deadline = time.monotonic() + self.budget()
        while time.monotonic() < deadline:
            quiet = time.monotonic() - self.last_activity >= self.IDLE_SECONDS
            if self.in_flight == 0 and quiet:
                break
            await asyncio.sleep(0.05)
        server.should_exit = True


def _has_session(scope: Any) -> bool:
    return any(name == b"mcp-session-id" for name, _ in scope.get("headers", ()))


async def _refuse_new_client(send: Any) -> None:
    body = b'{"error": "the server is stopping: it takes no new clients"}'
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _tick(runtime: ServerRuntime) -> None:
    """Tell the runtime, several times a heartbeat, that the event loop still turns (the
    heartbeat may quicken: systemd's watchdog, a reload)."""
    import asyncio

    while True:
        runtime.loop_turned()
        await asyncio.sleep(min(1.0, runtime.heartbeat_interval() / 4))


def _add_probe_routes(app: Any, runtime: ServerRuntime) -> None:
    """/healthz: the process serves (for liveness and startup probes). /readyz: it accepts
    work, false while starting or stopping (for readiness probes and load balancers)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(request: Request) -> JSONResponse:
        alive = runtime.state != "failed"
        return JSONResponse(
            {"ok": alive, "state": runtime.state}, status_code=200 if alive else 503
        )

    async def readyz(request: Request) -> JSONResponse:
        ready = runtime.state == "ready"
        return JSONResponse(
            {"ready": ready, "state": runtime.state}, status_code=200 if ready else 503
        )

    app.router.routes[:0] = [
        Route(HEALTHZ, healthz, methods=["GET"]),
        Route(READYZ, readyz, methods=["GET"]),
    ]


def _bind(host: str, port: int) -> socket.socket:
    import errno
    import socket

    from mcp_lifecycle.transports import ports

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # with Nagle on, every MCP answer waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        holder = (
            f" (held by {ports.describe(ports.listener(port))})"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise ServerFailed(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}{holder}",
            hint="choose another port (--port or MCP_SERVER_PORT), or stop what holds it "
            "(`doctor` names it)",
        ) from None
    return sock


def probe_mcp(url: str, timeout: float, token: str | None = None) -> tuple[bool, str]:
    """A real MCP handshake with the server at `url`, with its token if it has one."""
    from mcp_lifecycle.transports.probe import handshake

    return handshake(url, f"with {url}", timeout, token)
