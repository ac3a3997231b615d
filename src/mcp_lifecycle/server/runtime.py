"""The server side of the lifecycle: one `ServerRuntime` per server process runs the start
handler between taking the server's claim and giving it back.

Its parts each own one job: `ServerClaim` the cache root, lock, name and PID file;
`Heartbeat` the thread that vouches for the server; `Reloader` the SIGHUP reload; the
`ReadyPipe` the answer to a waiting `start`. The runtime holds the server's state and ties
them together: signal handlers only set flags and wake the heartbeat.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mcp_lifecycle.errors import LifecycleError, ServerFailed
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.handoff import ReadyPipe
from mcp_lifecycle.logs import set_level
from mcp_lifecycle.server import readiness
from mcp_lifecycle.server.claim import ServerClaim
from mcp_lifecycle.server.heartbeat import Heartbeat, LoopWatch
from mcp_lifecycle.server.reload import Reloader
from mcp_lifecycle.server.signals import SignalHandler
from mcp_lifecycle.server.snapshot_writer import SnapshotWriter
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.transports.access import server_token

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings

logger = logging.getLogger(__name__)

_CLEANUP_WRITE_WAIT_SECONDS = 5.0


class ShutdownRequested(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to unwind a start handler that registered no
    graceful stop. A BaseException so that `except Exception` in server code does not eat it."""


def current_runtime() -> ServerRuntime:
    """The runtime of this server process; start handlers use it for settings and graceful stop."""
    runtime = readiness.current()
    if not isinstance(runtime, ServerRuntime):
        raise LifecycleError(
            "no server runtime in this process",
            hint="start handlers are called by the factory's `start` command",
        )
    return runtime


def _after_fork_in_child() -> None:
    runtime = readiness.current()
    if isinstance(runtime, ServerRuntime):
        runtime.forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ServerRuntime:
    def __init__(
        self,
        settings: MCPServerSettings,
        start_handler: Callable[[], None],
        *,
        reload_settings: Callable[[], MCPServerSettings] | None = None,
        reload_handler: Callable[[MCPServerSettings], None] | None = None,
        ready_fd: int | None = None,
        supervisor: int | None = None,
    ) -> None:
        self.settings = settings
        self.paths = ServerPaths.for_settings(settings)
        self._start_handler = start_handler
        # Run by our supervisor, which holds the server's claim: this process holds none.
        self._supervisor = supervisor
        self._claim = ServerClaim(self.paths, supervised=supervisor is not None)
        self._pipe = ReadyPipe(ready_fd)
        self._reloader = Reloader(reload_settings, reload_handler)
        self._loop = LoopWatch()
        self._heartbeat = Heartbeat(self.heartbeat_interval, self._beat, self._reload)
        self._snapshots = SnapshotWriter(self._reloader, self._loop, orchestrator=supervisor)
        self._state = "starting"
        self._state_lock = threading.Lock()
        self._graceful_stop: Callable[[bool], None] | None = None
        self._shutdown_signals = 0
        self._in_handler = False
        self._cleaning = False
        # The bearer token HTTP clients must present (None: auth is off, or not HTTP).
        self.token: str | None = None

    # -- for start handlers ------------------------------------------------------------------

    @property
    def state(self) -> str:
        """starting, ready, stopping, stopped or failed."""
        return self._state

    def set_graceful_stop(self, stop: Callable[[bool], None] | None) -> None:
        """Register how SIGTERM asks the server to drain; `stop(force)` gets True on a repeat
        signal. Without one, SIGTERM raises ShutdownRequested in the main thread."""
        self._graceful_stop = stop

    def mark_ready(self) -> None:
        """Safe from any thread, any number of times; only the first call while starting counts."""
        with self._state_lock:
            if self._state != "starting":
                return
            self._state = "ready"
        self._write_snapshot()
        self._pipe.send_ready()
        readiness.sd_notify("READY=1")
        logger.info("server %s is ready (pid %d)", self.settings.server_name, os.getpid())

    def loop_turned(self) -> None:
        """Called from the server's event loop every turn or so: the heartbeat vouches for the
        server only while the loop keeps answering."""
        self._loop.turn()

    def loop_stall(self) -> float | None:
        """Seconds since the watched event loop last turned; None when none is watched."""
        return self._loop.stall()

    def heartbeat_interval(self) -> float:
        interval = self.settings.heartbeat_interval
        watchdog = os.environ.get("WATCHDOG_USEC", "")
        if watchdog.isdigit() and int(watchdog) > 0:
            # systemd kills a service that misses its watchdog: ping at twice its rate.
            interval = min(interval, int(watchdog) / 2_000_000)
        return interval

    def forget_in_child(self) -> None:
        """In a forked child: drop our copies of the claim and the readiness pipe."""
        self._claim.forget_in_child()
        self._pipe.forget_in_child()

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run the server until it stops. Raises AlreadyRunning, ServerFailed, or the
        LifecycleError the start handler raised."""
        # The handlers first: from the moment the lock is ours, `stop` may signal us, and a
        # SIGTERM must then be a request to stop, not the end without cleanup.
        signals = SignalHandler(self._on_shutdown_signal, self._heartbeat.request_reload).install()
        try:
            self._claim.take()
            self.token = self._token(self.settings)
        except LifecycleError as error:
            self._pipe.send_failure(int(error.exit_code), error.message, error.hint)
            # Whatever was taken before the failure (a token that cannot be read comes after
            # the lock and the name) is given back.
            self._claim.release()
            signals.restore()
            raise
        readiness.set_current(self)
        failure: BaseException | None = None
        try:
            # The snapshot first: until the PID file names this process, a reader that finds
            # no snapshot of it knows it is starting, not stale.
            self._write_snapshot()
            self._claim.write_pid_file()
            self._claim.register(LifecycleFields.of(self.settings).to_json())
            self._heartbeat.start()
            logger.info(
                "starting %s (pid %d, cache %s)",
                self.settings.server_name,
                os.getpid(),
                self.paths.cache_root,
            )
            failure = self._call_start_handler()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, then re-raised
            failure = exc
        finally:
            self._cleanup(signals, failure)
        if failure is not None:
            if isinstance(failure, LifecycleError):
                raise failure
            raise ServerFailed(f"the server failed: {describe(failure)}") from failure

    def _call_start_handler(self) -> BaseException | None:
        if self._shutdown_signals:
            return None  # asked to stop before the server even began
        self._in_handler = True
        try:
            self._start_handler()
        except ShutdownRequested:
            return None
        except SystemExit as exc:
            if exc.code not in (0, None):
                return exc
            # exit(0) is a return: a server that was ready has stopped cleanly.
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            return exc
        finally:
            self._in_handler = False
        if self._state == "starting" and not self._shutdown_signals:
            return ServerFailed("the start handler returned before the server was ready")
        return None

    def _cleanup(self, signals: SignalHandler, failure: BaseException | None) -> None:
        # The signal handler stays installed until the end: a repeat SIGTERM during cleanup
        # only counts, instead of killing us half-way and losing the PID file removal.
        self._cleaning = True
        self._graceful_stop = None
        try:
            with self._state_lock:
                self._state = "failed" if failure is not None else "stopping"
            if failure is not None:
                logger.error("server failed: %s", describe(failure))
                logger.debug("failure details", exc_info=failure)
                code = failure.exit_code if isinstance(failure, LifecycleError) else 1
                hint = failure.hint if isinstance(failure, LifecycleError) else None
                self._pipe.send_failure(int(code), describe(failure), hint)
            else:
                logger.info("stopping %s", self.settings.server_name)
                self._pipe.send_stopped()
            self._heartbeat.stop()
            if failure is None:
                self._state = "stopped"
            readiness.sd_notify("STOPPING=1")
            self._write_snapshot(final=True, wait=_CLEANUP_WRITE_WAIT_SECONDS)
            self._claim.remove_pid_file()
            self._claim.unregister()
        finally:
            self._pipe.close()
            readiness.set_current(None)
            self._claim.release()
            signals.restore()
            logger.info("%s stopped", self.settings.server_name)

    # -- signals (main thread, between bytecodes: set flags, never block) --------------------

    def _on_shutdown_signal(self) -> None:
        self._shutdown_signals += 1
        # Never block in a signal handler: the interrupted code may hold the state lock.
        if self._state_lock.acquire(blocking=False):
            try:
                if self._state in ("starting", "ready"):
                    self._state = "stopping"
            finally:
                self._state_lock.release()
        self._heartbeat.wake()
        if self._cleaning:
            return  # cleanup is under way; a repeat signal must not interrupt it
        graceful = self._graceful_stop
        if graceful is not None:
            graceful(self._shutdown_signals > 1)
        elif self._in_handler and self._shutdown_signals == 1:
            # Only inside the start handler: anywhere else the run is already heading for
            # cleanup, and an exception there would skip it.
            raise ShutdownRequested

    # -- heartbeat thread --------------------------------------------------------------------

    def _beat(self) -> None:
        if self._supervisor is not None and os.getppid() != self._supervisor:
            # Where the kernel cannot end us with our supervisor: nothing runs unmanaged.
            logger.error("the supervisor (PID %d) is gone; stopping", self._supervisor)
            os.kill(os.getpid(), signal.SIGTERM)
        vouch = self._loop.answers(self.heartbeat_interval())
        if vouch and self._state in ("starting", "ready") and os.environ.get("WATCHDOG_USEC"):
            readiness.sd_notify("WATCHDOG=1")
        self._claim.restore()
        self._write_snapshot(vouch=vouch)

    def _reload(self) -> None:
        # systemd hears of reloads only once the server was ready (READY=1 would be a lie
        # while it starts or stops).
        ready = self._state == "ready"
        if ready:
            readiness.sd_notify("RELOADING=1")
        try:
            self._reloader.reload(self.settings, self._take_up)
        finally:
            self._write_snapshot(vouch=self._loop.ok(self.heartbeat_interval()))
            if ready:
                readiness.sd_notify("READY=1")

    def _take_up(self, new: MCPServerSettings) -> None:
        set_level(new.log_level)
        self.settings = new
        # A rotated token, or auth switched on or off.
        self.token = self._token(new)
        self._claim.register(LifecycleFields.of(new).to_json())

    def _token(self, settings: MCPServerSettings) -> str | None:
        return server_token(settings, self._claim.files.token, shown=self.paths.token)

    def _write_snapshot(self, final: bool = False, wait: float = -1, vouch: bool = True) -> None:
        self._snapshots.write(
            self._claim.files.snapshot,
            self.settings,
            self._state,
            final=final,
            wait=wait,
            vouch=vouch,
        )


def run_unmanaged(start_handler: Callable[[], None]) -> None:
    """Serve one MCP client over stdio: SIGTERM/SIGINT end it cleanly, but there is no lock,
    PID file or snapshot, since every client runs an instance of its own."""

    def stop() -> None:
        raise ShutdownRequested

    with SignalHandler(stop):
        try:
            start_handler()
        except ShutdownRequested:
            return
        except LifecycleError:
            raise
        except (Exception, SystemExit) as exc:
            raise ServerFailed(f"the server failed: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    if isinstance(exc, LifecycleError):
        return exc.message
    if isinstance(exc, SystemExit):
        return f"the start handler called exit({exc.code})"
    return f"{type(exc).__name__}: {exc}"
