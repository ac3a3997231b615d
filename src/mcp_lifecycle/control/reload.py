"""`reload`, the control side: SIGHUP to the verified server, then wait until its snapshot
records the attempt, and say whether the new settings were applied."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from mcp_lifecycle.control.process import VerifiedProcess, require_running
from mcp_lifecycle.errors import ConfigurationError, LifecycleError, ReloadTimeout
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.snapshot import load_runtime_health
from mcp_lifecycle.handoff import HOOK_FAILED


@dataclass(frozen=True)
class ReloadResult:
    pid: int
    reloaded_at: str | None
    seconds: float


def reload_server(paths: ServerPaths, timeout: float) -> ReloadResult:
    """SIGHUP to the verified server, then wait until it recorded the attempt in its snapshot.

    ConfigurationError when it found the new configuration invalid (it keeps the old one),
    StopTimeout-like TIMEOUT when it did not answer within `timeout`."""
    state = require_running(paths, remove_stale=False)
    assert state.pid is not None
    began = time.monotonic()
    earlier = load_runtime_health(paths.snapshot)
    ours = state.pid in (earlier.pid, earlier.orchestrator_pid)
    before = earlier.reload_attempts if ours else 0
    target = VerifiedProcess(state.pid, state.identity)
    try:
        target.send(signal.SIGHUP)
    finally:
        target.close()
    deadline = began + timeout
    while True:
        snapshot = load_runtime_health(paths.snapshot)
        if state.pid in (snapshot.pid, snapshot.orchestrator_pid) and (
            snapshot.reload_attempts > before
        ):
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
