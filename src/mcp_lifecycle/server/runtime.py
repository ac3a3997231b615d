"""The server side of the lifecycle: lock, PID file, heartbeat, signals, the start handler, cleanup.

One `ServerRuntime` runs per server process. `start --foreground` runs it in the current
process; a detached `start` runs it in a fresh interpreter and waits on the readiness pipe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mcp_lifecycle.errors import (
    AlreadyRunning,
    ConfigurationError,
    CorruptFile,
    LifecycleError,
    ServerFailed,
    os_error,
)
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.files import registry
from mcp_lifecycle.files.identity import current_identity
from mcp_lifecycle.files.name_socket import address as control_address
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.pidfile import ServerLock, read_pid_file, remove_pid_file, write_pid_file
from mcp_lifecycle.files.private import ensure_cache_root, open_folder, same_folder, through_fd
from mcp_lifecycle.files.snapshot import RuntimeHealthSnapshot, update_runtime_health, utc_now_iso
from mcp_lifecycle.handoff import HOOK_FAILED, READY_MESSAGE, failure_line, send_line
from mcp_lifecycle.logs import set_level
from mcp_lifecycle.server import readiness
from mcp_lifecycle.server.name_claim import NameSocket
from mcp_lifecycle.server.signals import SignalHandler, keep_signals_for_the_main_thread
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.transports.access import ensure_token, read_token

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings

logger = logging.getLogger(__name__)

# Settings a running server cannot take up without a restart: they name its files and socket.
RESTART_ONLY = ("server_name", "cache_root", "host", "port", "http_path")
_CLEANUP_WRITE_WAIT_SECONDS = 5.0
_CLAIM_ATTEMPTS = 3

_current: ServerRuntime | None = None


class ShutdownRequested(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to unwind a start handler that registered no
    graceful stop. A BaseException so that `except Exception` in server code does not eat it."""


def current_runtime() -> ServerRuntime:
    """The runtime of this server process; start handlers use it for settings and graceful stop."""
    if _current is None:
        raise LifecycleError(
            "no server runtime in this process",
            hint="start handlers are called by the factory's `start` command",
        )
    return _current


def _after_fork_in_child() -> None:
    # A child forked without exec (multiprocessing, os.fork) would share the lock's open file
    # description and keep the server "running" after the server died. Closing its copy
    # leaves the parent's lock held.
    runtime = _current
    if runtime is not None:
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
    ) -> None:
        self.settings = settings
        # `paths` names the files for people and for the name claim; every read and write goes
        # through `_files`, which stays in the folder the server opened at start (see run()).
        self.paths = ServerPaths.for_settings(settings)
        self._files = self.paths
        self._folder_fds: list[int] = []  # the newest last; older ones stay open until cleanup
        self._start_handler = start_handler
        self._reload_settings = reload_settings
        self._reload_handler = reload_handler
        self._ready_fd = ready_fd
        if ready_fd is not None:
            os.set_inheritable(ready_fd, False)  # the server's own children must not hold it open
        self._lock = ServerLock(self.paths.lock)
        self._restored_locks: list[ServerLock] = []
        self._control = NameSocket(control_address(self.paths.cache_root, settings.server_name))
        self._graceful_stop: Callable[[bool], None] | None = None
        self._shutdown_signals = 0
        self._in_handler = False
        self._cleaning = False
        self._state = "starting"
        self._state_lock = threading.Lock()
        self._pipe_lock = threading.Lock()
        self._started_at = utc_now_iso()
        self._last_reload_at: str | None = None
        self._reload_attempts = 0
        self._last_reload_error: str | None = None
        self._wake = threading.Event()
        self._reload_requested = False
        self._stop_heartbeat = threading.Event()
        self._write_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self._identity = current_identity()
        # The bearer token HTTP clients must present (None: auth is off, or not HTTP).
        self.token: str | None = None
        # When the server's event loop last turned (monotonic), once a handler watches one.
        self._loop_turned: float | None = None
        self._stall_reported = False

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
        self._send_ready(READY_MESSAGE)
        readiness.sd_notify("READY=1")
        logger.info("server %s is ready (pid %d)", self.settings.server_name, os.getpid())

    def loop_turned(self) -> None:
        """Called from the server's event loop every turn or so: the heartbeat vouches for the
        server only while the loop keeps answering."""
        self._loop_turned = time.monotonic()

    def loop_stall(self) -> float | None:
        """Seconds since the watched event loop last turned; None when none is watched."""
        turned = self._loop_turned
        return None if turned is None else time.monotonic() - turned

    def forget_in_child(self) -> None:
        """In a forked child: drop our copies of the lock and the readiness pipe."""
        self._lock.forget()
        for lock in self._restored_locks:
            lock.forget()
        self._control.forget()
        self._pipe_lock = threading.Lock()  # a lock held at fork time would never be released
        self._close_ready_fd()

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run the server until it stops. Raises AlreadyRunning, ServerFailed, or the
        LifecycleError the start handler raised."""
        global _current  # noqa: PLW0603
        try:
            self._take_the_name()
        except LifecycleError as error:
            self._send_ready(failure_line(int(error.exit_code), error.message, error.hint))
            # Whatever was taken before the failure (a token that cannot be read comes after
            # the lock and the name) is given back.
            self._control.release()
            self._lock.release()
            self._close_folder()
            raise
        _current = self
        readiness.set_ready_callback(self.mark_ready)
        signals = SignalHandler(self._on_shutdown_signal, self._on_reload_signal).install()
        failure: BaseException | None = None
        try:
            # The snapshot first: until the PID file names this process, a reader that finds
            # no snapshot of it knows it is starting, not stale.
            self._write_snapshot()
            try:
                write_pid_file(self._files.pid)
            except OSError as exc:
                raise os_error(exc, self.paths.pid) from exc
            self._register()
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, name="mcp-lifecycle-heartbeat", daemon=True
            )
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
            raise ServerFailed(f"the server failed: {_describe(failure)}") from failure

    def _take_the_name(self) -> None:
        """The cache root, its lock and the name: AlreadyRunning if another server has them;
        a file system error (full, read-only, not a directory) as one line naming it."""
        try:
            ensure_cache_root(self.paths.cache_root)
            self._open_folder()
            self._lock = ServerLock(self._files.lock)
            taken = self._lock.acquire() and self._claim_name()
        except OSError as exc:
            raise os_error(exc, self.paths.cache_root) from exc
        if not taken:
            raise AlreadyRunning(f"{self.settings.server_name} is already running")
        self._load_token(create=True)

    def _load_token(self, *, create: bool) -> None:
        """The token of an HTTP server with auth on: made at its first start, read again on
        reload (after `rotate-token`)."""
        if self.settings.port is None or self.settings.auth == "none":
            self.token = None
            return
        given = self.settings.token_file
        try:
            if given is not None:  # someone else's to keep (a Secret): read, never made
                self.token = read_token(given)
                if self.token is None:
                    raise ConfigurationError(
                        f"token_file {given} holds no token",
                        hint="put the token in it, or unset token_file",
                    )
                return
            path = self._files.token
            self.token = ensure_token(path) if create else read_token(path) or self.token
        except OSError as exc:
            raise os_error(exc, given or self.paths.token) from exc

    def _claim_name(self) -> bool:
        """False if our server already runs under this name (its lock file deleted or moved,
        so our own lock proved nothing). Anyone else holding the name never stops us."""
        from mcp_lifecycle.files.name_socket import name_claim

        for _ in range(_CLAIM_ATTEMPTS):
            if self._control.claim():
                return True
            claim = name_claim(self.paths)
            if claim is None:
                time.sleep(0.01)  # its holder just let go, or does not answer: try again
                continue
            if claim.proven:
                self._lock.release()
                return False
            logger.warning(
                "the name of %s is held by %s; going on without it (`doctor` shows it)",
                self.settings.server_name,
                claim.describe(),
            )
            return True
        logger.warning(
            "the name of %s is bound by a process that does not answer; going on without it",
            self.settings.server_name,
        )
        return True

    def _call_start_handler(self) -> BaseException | None:
        if self._shutdown_signals:
            return None  # asked to stop before the server even began
        self._in_handler = True
        try:
            self._start_handler()
        except ShutdownRequested:
            return None
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported by the caller
            return exc
        finally:
            self._in_handler = False
        if self._state == "starting" and not self._shutdown_signals:
            return ServerFailed("the start handler returned before the server was ready")
        return None

    def _cleanup(self, signals: SignalHandler, failure: BaseException | None) -> None:
        global _current  # noqa: PLW0603
        # The signal handler stays installed until the end: a repeat SIGTERM during cleanup
        # only counts, instead of killing us half-way and losing the PID file removal.
        self._cleaning = True
        self._graceful_stop = None
        try:
            with self._state_lock:
                self._state = "failed" if failure is not None else "stopping"
            if failure is not None:
                logger.error("server failed: %s", _describe(failure))
                logger.debug("failure details", exc_info=failure)
                code = failure.exit_code if isinstance(failure, LifecycleError) else 1
                hint = failure.hint if isinstance(failure, LifecycleError) else None
                self._send_ready(failure_line(int(code), _describe(failure), hint))
            else:
                logger.info("stopping %s", self.settings.server_name)
                # Only reaches a `start` still waiting: a signal came before READY.
                self._send_ready(
                    failure_line(
                        int(ExitCode.GENERAL_ERROR),
                        "the server was told to stop (SIGTERM or SIGINT) before it was ready",
                        "something stopped it while it started (a `stop`?); run `start` again",
                    )
                )
            self._stop_heartbeat.set()
            self._wake.set()
            if self._heartbeat is not None:
                self._heartbeat.join(timeout=5)
            if failure is None:
                self._state = "stopped"
            readiness.sd_notify("STOPPING=1")
            self._write_snapshot(final=True, wait=_CLEANUP_WRITE_WAIT_SECONDS)
            remove_pid_file(self._files.pid, os.getpid())
            with contextlib.suppress(OSError, LifecycleError):
                registry.unregister(self.settings.server_name, self.paths.cache_root, os.getpid())
        finally:
            self._close_ready_fd()
            readiness.set_ready_callback(None)
            _current = None
            self._control.release()
            for lock in (self._lock, *self._restored_locks):
                lock.release()
            self._close_folder()
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
        self._wake.set()
        if self._cleaning:
            return  # cleanup is under way; a repeat signal must not interrupt it
        graceful = self._graceful_stop
        if graceful is not None:
            graceful(self._shutdown_signals > 1)
        elif self._in_handler and self._shutdown_signals == 1:
            # Only inside the start handler: anywhere else the run is already heading for
            # cleanup, and an exception there would skip it.
            raise ShutdownRequested

    def _on_reload_signal(self) -> None:
        self._reload_requested = True
        self._wake.set()

    # -- heartbeat thread --------------------------------------------------------------------

    def heartbeat_interval(self) -> float:
        interval = self.settings.heartbeat_interval
        watchdog = os.environ.get("WATCHDOG_USEC", "")
        if watchdog.isdigit() and int(watchdog) > 0:
            # systemd kills a service that misses its watchdog: ping at twice its rate.
            interval = min(interval, int(watchdog) / 2_000_000)
        return interval

    def _heartbeat_loop(self) -> None:
        keep_signals_for_the_main_thread()
        while not self._stop_heartbeat.is_set():
            self._wake.wait(timeout=self.heartbeat_interval())
            self._wake.clear()
            if self._stop_heartbeat.is_set():
                return
            try:
                self._beat()
            except Exception:
                # A heartbeat that dies makes a live server look hung: log and go on.
                logger.exception("heartbeat failed; retrying")

    def _beat(self) -> None:
        if self._reload_requested:
            self._reload_requested = False
            self._reload()
        vouch = self._loop_answers()
        if vouch and self._state in ("starting", "ready") and os.environ.get("WATCHDOG_USEC"):
            readiness.sd_notify("WATCHDOG=1")
        self._restore_files()
        self._write_snapshot(vouch=vouch)

    def _loop_ok(self) -> bool:
        stall = self.loop_stall()
        return stall is None or stall <= self.heartbeat_interval()

    def _loop_answers(self) -> bool:
        """Whether the server's event loop turned within the last heartbeat. A blocked loop
        (a sync sleep in an async tool) serves nothing, whatever this thread does: then the
        snapshot is left to go stale and systemd's watchdog is not fed."""
        stall = self.loop_stall()
        answers = self._loop_ok()
        if not answers and not self._stall_reported:
            logger.warning(
                "the event loop has not turned for %.1fs (blocked?); the health snapshot is "
                "left to go stale until it does",
                stall,
            )
        elif answers and self._stall_reported:
            logger.info("the event loop turns again")
        self._stall_reported = not answers
        return answers

    def _register(self) -> None:
        """Tell the registry where this server lives and with which settings, so it can be
        found by name from anywhere. A registry that cannot be written costs only that."""
        try:
            registry.register(LifecycleFields.of(self.settings).to_json(), os.getpid())
        except (OSError, LifecycleError) as exc:
            logger.warning("could not register in %s: %s", registry.running_dir(), exc)

    def _open_folder(self) -> None:
        """Open the cache root once and work through that descriptor, so that whatever later
        happens at its path (a rename, a swap for a symlink) cannot redirect our writes."""
        fd = open_folder(self.paths.cache_root)
        # An older descriptor stays open: another thread may be writing through it right now.
        self._folder_fds.append(fd)
        self._files = ServerPaths(self.paths.server_name, through_fd(fd, self.paths.cache_root))

    def _close_folder(self) -> None:
        fds, self._folder_fds = self._folder_fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _restore_files(self) -> None:
        """Put back what someone deleted while we run: the cache root, PID file and lock."""
        try:
            self._follow_cache_root()
            files = self._files
            try:
                recorded = read_pid_file(files.pid)
            except CorruptFile:
                recorded = None
            if recorded != os.getpid():
                logger.warning(
                    "the PID file %s was removed or changed; restoring it", self.paths.pid
                )
                write_pid_file(files.pid)
            if not any(lock.holds(files.lock) for lock in (self._lock, *self._restored_locks)):
                logger.warning("the lock file %s was removed; restoring it", self.paths.lock)
                lock = ServerLock(files.lock)
                if lock.acquire(wait_seconds=0):
                    self._restored_locks.append(lock)
                else:
                    logger.error("another process holds %s; not restored", self.paths.lock)
        except (OSError, LifecycleError) as exc:
            logger.warning("could not restore the server's files: %s", exc)

    def _follow_cache_root(self) -> None:
        """When the cache root's path no longer names our folder, move to what it names now,
        but only if that passes every check a new cache root must pass; else stay put."""
        root = self.paths.cache_root
        if not self._folder_fds or same_folder(self._folder_fds[-1], root):
            return
        if not os.path.lexists(root):
            logger.warning("the cache root %s was removed; restoring it", root)
        ensure_cache_root(root)  # raises InsecurePathError for a swapped-in symlink or stranger
        self._open_folder()

    def _reload(self) -> None:
        # systemd hears of reloads only once the server was ready (READY=1 would be a lie
        # while it starts or stops).
        ready = self._state == "ready"
        if ready:
            readiness.sd_notify("RELOADING=1")
        try:
            self._last_reload_error = self._apply_reload()
        except Exception as exc:  # anything a settings class or hook raises
            logger.exception("reload failed")
            self._last_reload_error = f"{type(exc).__name__}: {exc}"
        finally:
            # Whatever happened, the attempt is recorded at once (`reload` waits for it), and
            # systemd hears the reload is over (READY=1 only once the server was ready).
            self._reload_attempts += 1
            self._write_snapshot(vouch=self._loop_ok())
            if ready:
                readiness.sd_notify("READY=1")

    def _apply_reload(self) -> str | None:
        """Read the settings again and take them up; the problem, if any: invalid settings
        (the old ones then stay) or a reload hook that failed (the new ones are applied)."""
        if self._reload_settings is None:
            self._last_reload_at = utc_now_iso()
            return None
        try:
            new = self._reload_settings()
        except ConfigurationError as exc:
            logger.error("reload failed, keeping the previous settings: %s", exc.message)
            return exc.message
        except OSError as exc:  # e.g. the working directory was deleted
            error = os_error(exc)
            logger.error("reload failed, keeping the previous settings: %s", error.message)
            return error.message
        changed = [
            name for name in RESTART_ONLY if getattr(new, name) != getattr(self.settings, name)
        ]
        if changed:
            logger.warning("ignoring changed %s until the next restart", ", ".join(sorted(changed)))
            new = new.model_copy(update={name: getattr(self.settings, name) for name in changed})
        set_level(new.log_level)
        self.settings = new
        self._load_token(create=True)  # a rotated token, or auth switched on or off
        self._last_reload_at = utc_now_iso()
        self._register()
        logger.info("settings reloaded")
        if self._reload_handler is not None:
            try:
                self._reload_handler(new)
            except Exception as exc:
                logger.exception("the server's reload hook failed")
                return f"{HOOK_FAILED}: {type(exc).__name__}: {exc}"
        return None

    def _write_snapshot(self, final: bool = False, wait: float = -1, vouch: bool = True) -> None:
        def mutate(snapshot: RuntimeHealthSnapshot) -> None:
            # Not vouching keeps our last good timestamp; never an earlier server's.
            keep_stamp = not vouch and snapshot.pid == self._identity.pid
            snapshot.orchestrator_pid = self._identity.pid
            snapshot.pid = self._identity.pid
            snapshot.process_create_time = self._identity.create_time
            snapshot.server_name = self.settings.server_name
            snapshot.watchers_running = not final
            snapshot.state = self._state
            snapshot.lifecycle_state = {"state": self._state}
            snapshot.activity_state = {"accepting_work": self._state == "ready"}
            snapshot.started_at = self._started_at
            snapshot.last_reload_at = self._last_reload_at
            snapshot.reload_attempts = self._reload_attempts
            snapshot.last_reload_error = self._last_reload_error
            snapshot.url = self.settings.url
            if snapshot.probe is not None and snapshot.probe.get("pid") != self._identity.pid:
                snapshot.probe = None  # a probe of an earlier server says nothing about this one
            snapshot.loop_turned_monotonic = self._loop_turned
            # The heartbeat's own time, vouching or not: a blocked loop, not a frozen process.
            snapshot.heartbeat_monotonic = time.monotonic()
            if not keep_stamp or snapshot.updated_at is None:
                snapshot.touch()

        if not self._write_lock.acquire(timeout=wait):
            logger.warning("the health snapshot is busy; not written")
            return
        try:
            update_runtime_health(self._files.snapshot, mutate)
        except (OSError, LifecycleError) as exc:
            logger.warning("could not write the health snapshot (will retry): %s", exc)
        finally:
            self._write_lock.release()

    # -- readiness pipe ----------------------------------------------------------------------

    def _take_ready_fd(self) -> int | None:
        """Whoever takes the fd writes and closes it, exactly once, whatever the threads do."""
        with self._pipe_lock:
            fd, self._ready_fd = self._ready_fd, None
        return fd

    def _send_ready(self, message: str) -> None:
        fd = self._take_ready_fd()
        if fd is not None:
            send_line(fd, message)

    def _close_ready_fd(self) -> None:
        fd = self._take_ready_fd()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


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
            raise ServerFailed(f"the server failed: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LifecycleError):
        return exc.message
    if isinstance(exc, SystemExit):
        return f"the start handler called exit({exc.code})"
    return f"{type(exc).__name__}: {exc}"
