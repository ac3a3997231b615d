"""`start`, the control side: make sure the server may start, spawn it detached, and return
once it is READY (the handshake is in `mcp_lifecycle.handoff`); a server that is not ready in
time, or fails, leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mcp_lifecycle import handoff
from mcp_lifecycle.control.inspect import Condition, inspect_server
from mcp_lifecycle.control.process import (
    KILL_GRACE_SECONDS,
    end_descendants,
    remove_stale_pid_file,
    wait_group,
)
from mcp_lifecycle.errors import (
    AlreadyRunning,
    ConfigurationError,
    Interrupted,
    ServerFailed,
    StalePid,
    StartTimeout,
    error_for_exit_code,
)
from mcp_lifecycle.files.paths import SNAPSHOT_NAME, ServerPaths
from mcp_lifecycle.files.pidfile import StartLock, lock_is_held, remove_pid_file
from mcp_lifecycle.files.private import ensure_cache_root, open_private_append, refuse_symlink
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.settings.flags import Flags

_LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class StartResult:
    pid: int
    url: str | None
    log_path: Path
    stale_note: str | None = None


def ensure_startable(paths: ServerPaths, stale_pid_action: str, force: bool) -> str | None:
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
        remove_stale_pid_file(paths, state)
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


def start_detached(
    settings: LifecycleFields,
    command: list[str],
    flags: Flags,
    timeout: float,
    force: bool = False,
    watch: list[str] | None = None,
    env: dict[str, str] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> StartResult:
    """Spawn `command` (this CLI's `start --foreground`, handed `flags`; `env` added to its
    environment) in a session of its own, and return once it is READY. Once `cancelled()`
    says so, stop waiting, take back what was spawned and raise Interrupted."""
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
        note = ensure_startable(paths, settings.stale_pid_action, force)
        result = _spawn_and_wait(settings, paths, command, flags, timeout, watch, env, cancelled)
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
    flags: Flags,
    timeout: float,
    watch: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> StartResult:
    refuse_symlink(paths.log)
    _rotate_log(paths.log, settings.log_max_bytes, settings.log_backup_count)
    log_fd = open_private_append(paths.log)
    log_offset = os.lseek(log_fd, 0, os.SEEK_END)
    read_fd, write_fd = os.pipe()
    env = {
        **os.environ,
        **(extra_env or {}),
        **handoff.to_env(flags, write_fd, str(paths.log), watch),
    }
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
        answer = handoff.await_ready(read_fd, timeout, cancelled)
        if answer is None and cancelled is not None and cancelled():
            raise Interrupted(f"interrupted while {settings.server_name} was starting; stopped it")
    except BaseException:
        _kill_spawned(proc, paths)  # Ctrl-C while waiting: take back what we started
        raise
    finally:
        os.close(read_fd)
    if answer is not None and answer.ready:
        return StartResult(proc.pid, settings.url, paths.log)
    # Not ready: nothing we started may survive, and no PID file may stay behind.
    exited = _wait_exit(proc, 0 if answer is None else KILL_GRACE_SECONDS)
    _kill_spawned(proc, paths)
    tail = _log_tail(paths.log, log_offset)
    if answer is None:
        raise StartTimeout(
            f"{settings.server_name} was not ready within {timeout:g}s; stopped it",
            hint=f"see the log {paths.log}, or raise --timeout",
            log_tail=tail,
        )
    if answer.code is not None:
        hint = answer.hint or f"see the log {paths.log}"
        error = error_for_exit_code(answer.code, answer.message, hint=hint)
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
    waitid = getattr(os, "waitid", None)  # not on macOS before Python 3.13
    deadline = time.monotonic() + timeout
    while True:
        if waitid is None:
            if _exited(proc.pid):
                return True  # its exit code comes when `_kill_spawned` reaps it
        else:
            info = waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                proc.returncode = (
                    info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
                )
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _exited(pid: int) -> bool:
    """An exited child not yet reaped is a zombie."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _kill_spawned(proc: subprocess.Popen[bytes], paths: ServerPaths) -> None:
    """Stop a server this command spawned, with its whole process group.

    The leader is reaped only at the end: until then its PID, and so the group ID, cannot be
    reused, and `killpg` can reach no stranger.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    if not wait_group(proc.pid, time.monotonic() + KILL_GRACE_SECONDS):
        end_descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        wait_group(proc.pid, time.monotonic() + KILL_GRACE_SECONDS)
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
