"""The server's health snapshot, as the server writes it: who it is, its state, its last
reload, and when its loop and heartbeat last ran."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.files.identity import current_identity
from mcp_lifecycle.files.snapshot import RuntimeHealthSnapshot, update_runtime_health, utc_now_iso
from mcp_lifecycle.server.heartbeat import LoopWatch
from mcp_lifecycle.server.reload import Reloader

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings

logger = logging.getLogger(__name__)


class SnapshotWriter:
    """One writer at a time: the heartbeat, the main thread and `notify_ready` all write."""

    def __init__(
        self, reloader: Reloader, loop: LoopWatch, orchestrator: int | None = None
    ) -> None:
        # The process that holds the server's claim: our supervisor, or this process.
        self._orchestrator = orchestrator
        self._reloader = reloader
        self._loop = loop
        self._identity = current_identity()
        self._started_at = utc_now_iso()
        self._started_monotonic = time.monotonic()
        self._ready_at: str | None = None
        self._lock = threading.Lock()

    def write(
        self,
        path: Path,
        settings: MCPServerSettings,
        state: str,
        *,
        final: bool = False,
        wait: float = -1,
        vouch: bool = True,
    ) -> None:
        """Rewrite the snapshot; `vouch=False` keeps its last good timestamp (the server's loop
        does not answer), so that it goes stale. Waits up to `wait` seconds for another writer
        (forever when negative)."""
        identity = self._identity
        reloader = self._reloader

        def mutate(snapshot: RuntimeHealthSnapshot) -> None:
            # Not vouching keeps our last good timestamp; never an earlier server's.
            keep_stamp = not vouch and snapshot.pid == identity.pid
            snapshot.orchestrator_pid = self._orchestrator or identity.pid
            snapshot.pid = identity.pid
            snapshot.process_create_time = identity.create_time
            snapshot.server_name = settings.server_name
            snapshot.watchers_running = not final
            snapshot.state = state
            snapshot.lifecycle_state = {"state": state}
            snapshot.activity_state = {"accepting_work": state == "ready"}
            snapshot.started_at = self._started_at
            snapshot.started_monotonic = self._started_monotonic
            if state == "ready" and self._ready_at is None:
                self._ready_at = utc_now_iso()
            snapshot.ready_at = self._ready_at or snapshot.ready_at
            snapshot.last_reload_at = reloader.last_at
            snapshot.reload_attempts = reloader.attempts
            snapshot.last_reload_error = reloader.last_error
            snapshot.url = settings.url
            if snapshot.probe is not None and snapshot.probe.get("pid") != identity.pid:
                snapshot.probe = None  # a probe of an earlier server says nothing about this one
            snapshot.loop_turned_monotonic = self._loop.turned
            # The heartbeat's own time, vouching or not: a blocked loop, not a frozen process.
            snapshot.heartbeat_monotonic = time.monotonic()
            if not keep_stamp or snapshot.updated_at is None:
                snapshot.touch()

        if not self._lock.acquire(timeout=wait):
            logger.warning("the health snapshot is busy; not written")
            return
        try:
            update_runtime_health(path, mutate)
        except (OSError, LifecycleError) as exc:
            logger.warning("could not write the health snapshot (will retry): %s", exc)
        finally:
            self._lock.release()
