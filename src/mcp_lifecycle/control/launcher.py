"""The CLI side of start and stop: spawn detached, wait for READY, stop and escalate.

Nothing here signals a process before proving it is our server (see `state` and `identity`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from mcp_lifecycle.control.inspect import Condition, ServerState, inspect_server
from mcp_lifecycle.errors import (
    AlreadyRunning,
    ConfigurationError,
    LifecycleError,
    NotRunning,
    ReloadTimeout,
    ServerFailed,
    StalePid,
    StartTimeout,
    StopTimeout,
    error_for_exit_code,
)
from mcp_lifecycle.files.identity import ProcessIdentity, is_process_alive, mismatch_reason
from mcp_lifecycle.files.paths import SNAPSHOT_NAME, ServerPaths
from mcp_lifecycle.files.pidfile import StartLock, lock_is_held, remove_pid_file
from mcp_lifecycle.files.private import (
    ensure_cache_root,
    open_private_append,
    read_no_follow,
    refuse_symlink,
)
from mcp_lifecycle.files.snapshot import (
    RuntimeHealthSnapshot,
    load_runtime_health,
    update_runtime_health,
)
from mcp_lifecycle.handoff import (
    FAILED_PREFIX,
    HOOK_FAILED,
    LOG_ENV,
    READY_FD_ENV,
    READY_MESSAGE,
)
from mcp_lifecycle.settings.fields import LifecycleFields

_LOG_TAIL_LINES = 20
_KILL_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class StartResult:
    pid: int
    url: str | None
    log_path: Path
    stale_note: str | None = None


@dataclass(frozen=True)
class StopResult:
    pid: int
    forced: bool
    seconds: float


def clear_for_start(paths: ServerPaths, stale_pid_action: str, force: bool) -> str | None:
    """Refuse if a server runs; deal with a stale PID file. Returns a note for the person."""
    _refuse_shared_cache_root(paths)
    state = inspect_server(paths)
    if state.condition in (Condition.RUNNING, Condition.UNVERIFIED):
        where = f" (PID {state.pid})" if state.pid else ""
        raise AlreadyRunning(
            f"{paths.server_name} is already running{where}",
            hint="use `status` to inspect it, or `restart` to replace it",
        )
    if state.condition is Condition.STALE:
        if stale_pid_action == "refuse" and not force:
            raise StalePid(
                f"stale PID file {paths.pid}: {state.reason}",
                hint="check it, then run `start --force` (or remove the file)",
            )
        _remove_stale(paths, state)
        return f"removed stale PID file: {state.reason}"
    return None


def _refuse_shared_cache_root(paths: ServerPaths) -> None:
    """Two servers in one cache root would overwrite each other's snapshot."""
    for lock in paths.cache_root.glob("*.lock"):
        name = lock.name.removesuffix(".lock")
        if name.endswith(".start") or lock.name.startswith(SNAPSHOT_NAME):
            continue
        if name != paths.server_name and lock_is_held(lock):
            raise ConfigurationError(
                f"the cache root {paths.cache_root} is in use by the running server {name!r}",
                hint="give each server its own cache_root",
            )


def _remove_stale(paths: ServerPaths, state: ServerState) -> None:
    if state.pid_file_pid is not None:
        remove_pid_file(paths.pid, state.pid_file_pid)
        return
    # A corrupt file: remove it only if it still holds what was judged, so a PID file that a
    # racing server has just written survives.
    with contextlib.suppress(OSError, LifecycleError):
        if read_no_follow(paths.pid, 4096) == state.pid_file_bytes:
            os.unlink(paths.pid)


def start_detached(
    settings: LifecycleFields,
    command: list[str],
    env: dict[str, str],
    timeout: float,
    force: bool = False,
) -> StartResult:
    """Spawn `command` (which runs the server in the foreground, with `env` added to ours) and
    return once it is READY."""
    if settings.transport == "stdio":
        raise ConfigurationError(
            f"{settings.server_name} speaks MCP over stdio and cannot run detached "
            "(its stdin would be /dev/null)",
            hint="let the MCP client run `start --foreground`; check it with `health --probe`",
        )
    paths = ServerPaths.for_settings(settings)
    ensure_cache_root(paths.cache_root)
    start_lock = StartLock(paths.start_lock)
    if not start_lock.acquire(timeout):
        raise StartTimeout(
            f"another `start` of {settings.server_name} did not finish within {timeout:g}s"
        )
    try:
        note = clear_for_start(paths, settings.stale_pid_action, force)
        result = _spawn_and_wait(settings, paths, command, env, timeout)
        return StartResult(result.pid, result.url, result.log_path, note)
    finally:
        start_lock.release()


def _rotate_log(path: Path, max_bytes: int, backups: int) -> None:
    try:
        if path.stat().st_size < max_bytes:
            return
    except FileNotFoundError:
        return
    if backups == 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    for index in range(backups - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}.{index}", f"{path}.{index + 1}")
    os.replace(path, f"{path}.1")


def _spawn_and_wait(
    settings: LifecycleFields,
    paths: ServerPaths,
    command: list[str],
    extra_env: dict[str, str],
    timeout: float,
) -> StartResult:
    refuse_symlink(paths.log)
    _rotate_log(paths.log, settings.log_max_bytes, settings.log_backup_count)
    log_fd = open_private_append(paths.log)
    log_offset = os.lseek(log_fd, 0, os.SEEK_END)
    read_fd, write_fd = os.pipe()
    env = {**os.environ, **extra_env, READY_FD_ENV: str(write_fd), LOG_ENV: str(paths.log)}
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(write_fd,),
            env=env,
        )
    except OSError as exc:
        os.close(read_fd)
        raise ServerFailed(f"could not run {command[0]}: {exc}") from None
    finally:
        os.close(write_fd)
        os.close(log_fd)
    try:
        message = _read_ready(read_fd, timeout)
    except BaseException:
        _kill_spawned(proc, paths)  # Ctrl-C while waiting: take back what we started
        raise
    finally:
        os.close(read_fd)
    if message == READY_MESSAGE:
        return StartResult(proc.pid, settings.url, paths.log)
    # Not ready: nothing we started may survive, and no PID file may stay behind.
    exited = _wait_exit(proc, 0 if message is None else _KILL_GRACE_SECONDS)
    _kill_spawned(proc, paths)
    tail = _log_tail(paths.log, log_offset)
    if message is None:
        raise StartTimeout(
            f"{settings.server_name} was not ready within {timeout:g}s; stopped it",
            hint=f"see the log {paths.log}, or raise --timeout",
            log_tail=tail,
        )
    prefix, _, detail = message.partition(" ")
    code_text, _, reason = detail.partition(" ")
    reason, _, hint = reason.partition("\t")
    if prefix == FAILED_PREFIX and code_text.isdigit() and reason:
        error = error_for_exit_code(int(code_text), reason, hint=hint or f"see the log {paths.log}")
        if isinstance(error, ServerFailed):
            error.log_tail = tail
        raise error
    how = f"exited with code {proc.returncode}" if exited else "closed its readiness pipe"
    raise ServerFailed(
        f"the server {how} before it was ready", hint=f"see the log {paths.log}", log_tail=tail
    )


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for the child to exit without reaping it (its PID, and so its process group ID,
    stays ours until `_kill_spawned` reaps it)."""
    deadline = time.monotonic() + timeout
    while True:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            proc.returncode = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _read_ready(fd: int, timeout: float) -> str | None:
    """The server's one readiness line; "" if it closed the pipe without one; None on timeout."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()


def _kill_spawned(proc: subprocess.Popen[bytes], paths: ServerPaths) -> None:
    """Stop a server this command spawned, with its whole process group.

    The leader is reaped only at the end: until then its PID, and so the group ID, cannot be
    reused, and `killpg` can reach no stranger.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    if not _wait_group(proc.pid, time.monotonic() + _KILL_GRACE_SECONDS):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _wait_group(proc.pid, time.monotonic() + _KILL_GRACE_SECONDS)
    proc.wait()
    remove_pid_file(paths.pid, proc.pid)


def _log_tail(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:])


# -- stop ------------------------------------------------------------------------------------


def stop_server(
    paths: ServerPaths,
    timeout: float,
    kill: bool = True,
    stop_handler: Callable[[int], None] | None = None,
) -> StopResult:
    """Verify, ask to stop, wait, escalate. Never signals a process that is not our server."""
    state = _require_running(paths, remove_stale=True)
    assert state.pid is not None
    pid = state.pid
    began = time.monotonic()
    target = _Verified(pid, state.identity)
    try:
        # A detached server leads its own session: its children go with it. Any other
        # server (foreground, under a shell) shares a group with strangers: signal it alone.
        group = _leads_session(pid)
        if stop_handler is not None:
            stop_handler(pid)
        elif group:
            os.killpg(pid, signal.SIGTERM)
        else:
            target.send(signal.SIGTERM)
        deadline = began + timeout
        exited = target.wait(deadline) and (not group or _wait_group(pid, deadline))
        forced = False
        if not exited:
            if not kill:
                raise StopTimeout(
                    f"{paths.server_name} (PID {pid}) did not stop within {timeout:g}s; "
                    "left it running",
                    hint="run `stop` again without --no-kill to force it",
                )
            forced = True
            if group:
                _kill_group_leftovers(pid)
            with contextlib.suppress(ProcessLookupError):
                target.send(signal.SIGKILL)
            target.wait(time.monotonic() + _KILL_GRACE_SECONDS)
    finally:
        target.close()
    if remove_pid_file(paths.pid, pid) or forced:
        _mark_stopped(paths, pid)
    return StopResult(pid=pid, forced=forced, seconds=time.monotonic() - began)


def _require_running(paths: ServerPaths, *, remove_stale: bool) -> ServerState:
    """The server's state if it provably runs; NotRunning or StalePid otherwise."""
    state = inspect_server(paths)
    if state.condition is Condition.NOT_RUNNING:
        raise NotRunning(f"{paths.server_name} is not running")
    if state.condition is Condition.STALE:
        if remove_stale:
            _remove_stale(paths, state)
            raise StalePid(
                f"stale PID file removed: {state.reason}",
                hint="nothing was signalled; `start` it again",
            )
        raise StalePid(f"stale PID file: {state.reason}", hint="nothing was signalled")
    if state.condition is Condition.UNVERIFIED or state.pid is None:
        raise StalePid(
            f"refusing to signal anything: {state.reason}",
            hint="find the process holding the lock with `fuser` or `lsof`",
        )
    return state


# -- reload ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReloadResult:
    pid: int
    reloaded_at: str | None
    seconds: float


def reload_server(paths: ServerPaths, timeout: float) -> ReloadResult:
    """SIGHUP to the verified server, then wait until it recorded the attempt in its snapshot.

    ConfigurationError when it found the new configuration invalid (it keeps the old one),
    StopTimeout-like TIMEOUT when it did not answer within `timeout`."""
    state = _require_running(paths, remove_stale=False)
    assert state.pid is not None
    began = time.monotonic()
    earlier = load_runtime_health(paths.snapshot)
    before = earlier.reload_attempts if earlier.pid == state.pid else 0
    target = _Verified(state.pid, state.identity)
    try:
        target.send(signal.SIGHUP)
    finally:
        target.close()
    deadline = began + timeout
    while True:
        snapshot = load_runtime_health(paths.snapshot)
        if snapshot.pid == state.pid and snapshot.reload_attempts > before:
            break
        if time.monotonic() >= deadline:
            raise ReloadTimeout(
                f"{paths.server_name} (PID {state.pid}) did not record the reload within "
                f"{timeout:g}s",
                hint="see `logs`; a busy server may need a longer --timeout",
            )
        time.sleep(0.02)
    if snapshot.last_reload_error and snapshot.last_reload_error.startswith(HOOK_FAILED):
        raise LifecycleError(
            f"{paths.server_name}: {snapshot.last_reload_error}",
            hint="see `logs` for the hook's traceback",
        )
    if snapshot.last_reload_error:
        raise ConfigurationError(
            f"the new configuration is invalid, so {paths.server_name} keeps its previous "
            f"settings: {snapshot.last_reload_error}",
            hint="fix it, then run `reload` again (`config` shows the effective settings)",
        )
    return ReloadResult(state.pid, snapshot.last_reload_at, time.monotonic() - began)


class _Verified:
    """Our server's process, proven by identity, signalled through a pidfd where the kernel
    has them: once the pidfd is open and the identity checks out, no signal through it can
    reach a recycled PID. Without pidfds (old kernels, some seccomp profiles) the identity is
    checked again right before each signal."""

    def __init__(self, pid: int, identity: ProcessIdentity | None) -> None:
        self.pid = pid
        self.identity = identity
        self.pidfd: int | None = None
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise NotRunning(f"PID {pid} just exited") from None
        except (OSError, AttributeError):
            self.pidfd = None
        self._verify()

    def _verify(self) -> None:
        reason = mismatch_reason(self.pid, self.identity)
        if reason is not None:
            self.close()
            raise StalePid(f"refusing to signal PID {self.pid}: {reason}")

    def send(self, signum: int) -> None:
        if self.pidfd is not None:
            signal.pidfd_send_signal(self.pidfd, signum)
        else:
            self._verify()
            os.kill(self.pid, signum)

    def wait(self, deadline: float) -> bool:
        """True once the process has exited (a zombie counts: it will never run again)."""
        if self.pidfd is not None:
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))
        while is_process_alive(self.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _leads_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except ProcessLookupError:
        return False


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _wait_group(pgid: int, deadline: float) -> bool:
    """Wait for the rest of the server's process group (its children) to exit."""
    while _group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _kill_group_leftovers(pgid: int) -> None:
    """SIGKILL what is left of a process group of ours. A group ID cannot be reused while the
    group has members, so only a group with members is signalled."""
    if not _group_members(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + _KILL_GRACE_SECONDS
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _mark_stopped(paths: ServerPaths, pid: int) -> None:
    def mutate(snapshot: RuntimeHealthSnapshot) -> None:
        if snapshot.pid == pid and snapshot.state != "stopped":
            snapshot.state = "stopped"
            snapshot.lifecycle_state = {"state": "stopped"}
            snapshot.watchers_running = False
            snapshot.touch()

    with contextlib.suppress(OSError, LifecycleError):
        update_runtime_health(paths.snapshot, mutate)


def python_command(argv0: str, subcommand: list[str]) -> list[str]:
    """How to run this same CLI again in a fresh interpreter, however it was launched."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", None):
        # `python -m pkg.mod`: run the module again, not its file (relative imports need it).
        module = spec.name.removesuffix(".__main__")
        return [sys.executable, "-m", module, *subcommand]
    return [sys.executable, os.path.abspath(argv0), *subcommand]
