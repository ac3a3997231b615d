"""`stop`, the control side: verify the process is our server, ask it to stop (SIGTERM to its
process group, or the author's stop handler), wait, escalate to SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import NamedTuple

from mcp_lifecycle.control.process import (
    KILL_GRACE_SECONDS,
    VerifiedProcess,
    end_descendants,
    kill_group_leftovers,
    leads_session,
    require_running,
    wait_group,
)
from mcp_lifecycle.errors import LifecycleError, StopTimeout
from mcp_lifecycle.files import registry
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.pidfile import remove_pid_file
from mcp_lifecycle.files.snapshot import RuntimeHealthSnapshot, update_runtime_health
from mcp_lifecycle.files.supervision import read_record, remove_record


class StopResult(NamedTuple):
    pid: int
    forced: bool
    seconds: float


def stop_server(
    paths: ServerPaths,
    timeout: float,
    kill: bool = True,
    stop_handler: Callable[[int], None] | None = None,
) -> StopResult:
    """Verify, ask to stop, wait, escalate. Never signals a process that is not our server."""
    state = require_running(paths, remove_stale=True)
    assert state.pid is not None
    pid = state.pid
    began = time.monotonic()
    target = VerifiedProcess(pid, state.identity)
    try:
        # A detached server leads its own session: its children go with it. Any other
        # server (foreground, under a shell) shares a group with strangers: signal it alone.
        group = leads_session(pid)
        if stop_handler is not None:
            stop_handler(pid)
        else:
            # ProcessLookupError: it exited as we came to stop it (verified ours just now).
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(pid, signal.SIGTERM)
                else:
                    target.send(signal.SIGTERM)
        deadline = began + timeout
        exited = target.wait(deadline) and (not group or wait_group(pid, deadline))
        forced = False
        if not exited:
            if not kill:
                raise StopTimeout(
                    f"{paths.server_name} (PID {pid}) did not stop within {timeout:g}s; "
                    "left it running",
                    hint="run `stop` again without --no-kill to force it",
                )
            forced = True
            end_descendants(pid)  # while it lives, what is under it is provably ours
            if group:
                kill_group_leftovers(pid)
            with contextlib.suppress(ProcessLookupError):
                target.send(signal.SIGKILL)
            target.wait(time.monotonic() + KILL_GRACE_SECONDS)
            _kill_supervised_leftovers(paths, pid)
    finally:
        target.close()
    if remove_pid_file(paths.pid, pid) or forced:
        _mark_stopped(paths, pid)
    if forced:
        # What a killed supervisor could not take back itself.
        remove_record(paths.supervision)
        with contextlib.suppress(OSError, LifecycleError):
            registry.unregister(paths.server_name, paths.cache_root, pid)
    return StopResult(pid=pid, forced=forced, seconds=time.monotonic() - began)


def _kill_supervised_leftovers(paths: ServerPaths, supervisor: int) -> None:
    """A supervised server runs in a process group of its own: when its supervisor had to be
    killed, what is left of that group (the server's own children) goes too. Only members
    still in the supervisor's session count, so a reused group ID finds nothing."""
    record = read_record(paths.supervision)
    if record is None or record.supervisor_pid != supervisor or record.server_pid is None:
        return
    kill_group_leftovers(record.server_pid, session=supervisor)


def _mark_stopped(paths: ServerPaths, pid: int) -> None:
    def mutate(snapshot: RuntimeHealthSnapshot) -> None:
        # A supervised server's snapshot names its supervisor as the orchestrator.
        if pid in (snapshot.pid, snapshot.orchestrator_pid) and snapshot.state != "stopped":
            snapshot.state = "stopped"
            snapshot.lifecycle_state = {"state": "stopped"}
            snapshot.watchers_running = False
            snapshot.touch()

    with contextlib.suppress(OSError, LifecycleError):
        update_runtime_health(paths.snapshot, mutate)
