"""What state a server is in, as the user hears it: one `Status` that `status`, `health`, `ls`
and `doctor` all read, and its exit code.

`observe` judges it from the lock and identity record (`inspect`) and the server's health
snapshot: running, ours, and vouched for by a heartbeat within the TTL.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from mcp_lifecycle.control.inspect import Condition, ServerState, inspect_server
from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.files.identity import ProcessIdentity, boot_id
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.snapshot import (
    RuntimeHealthSnapshot,
    get_snapshot_age_seconds,
    is_snapshot_fresh,
    load_runtime_health,
    uptime_seconds,
)
from mcp_lifecycle.files.supervision import read_record
from mcp_lifecycle.settings.fields import LifecycleFields

# A condition beyond `Condition`'s: the server's files could not be judged at all (`ls`).
UNREADABLE = "error"


class Status(NamedTuple):
    server: str
    condition: str
    pid: int | None
    state: str | None
    url: str | None
    snapshot_age_seconds: float | None
    snapshot_fresh: bool
    ttl_seconds: float
    reason: str
    cache_root: str
    log_file: str
    # Seconds since the server's event loop last turned, when it is stale because of that.
    loop_blocked_seconds: float | None = None
    uptime_seconds: float | None = None
    # For a server with a restart policy: its supervisor, the restarts since `start`, and how
    # the server last ended (code, signal, at, uptime_seconds).
    supervisor_pid: int | None = None
    restarts: int | None = None
    last_exit: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self.condition == Condition.RUNNING.value

    @property
    def exit_code(self) -> ExitCode:
        """0 running and fresh, 2 not running, 4 its snapshot is stale, 8 a stale PID file or a
        lock holder that cannot be proven ours, 1 its files could not be read."""
        if self.condition == Condition.NOT_RUNNING.value:
            return ExitCode.SERVER_NOT_RUNNING
        if self.condition in (Condition.STALE.value, Condition.UNVERIFIED.value):
            return ExitCode.STALE_PID
        if self.condition == UNREADABLE:
            return ExitCode.GENERAL_ERROR
        if self.state == "restarting":
            return ExitCode.HEALTH_CHECK_FAILED  # its supervisor runs; no server does
        return ExitCode.SUCCESS if self.snapshot_fresh else ExitCode.HEALTH_CHECK_FAILED

    def as_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["running"] = self.running
        if data["snapshot_age_seconds"] is not None:
            data["snapshot_age_seconds"] = round(data["snapshot_age_seconds"], 3)
        return data


class Observed(NamedTuple):
    status: Status
    snapshot: RuntimeHealthSnapshot  # this server's (empty when it has none yet)
    state: ServerState


def observe(fields: LifecycleFields) -> Observed:
    """The server these settings name, now. Raises InsecurePathError for an unsafe cache root;
    never signals anything."""
    paths = ServerPaths.for_settings(fields)
    state = inspect_server(paths)
    snapshot = RuntimeHealthSnapshot()
    age: float | None = None
    fresh = False
    supervision = read_record(paths.supervision)
    if supervision is not None and state.running and supervision.supervisor_pid != state.pid:
        supervision = None  # an earlier supervisor's: this server runs without one
    if state.running:
        snapshot = load_runtime_health(paths.snapshot)
        # A supervised server's snapshot names its supervisor, which holds the lock.
        if state.pid in (snapshot.pid, snapshot.orchestrator_pid):
            age = get_snapshot_age_seconds(snapshot)
            fresh = is_snapshot_fresh(snapshot, fields.health_ttl_seconds)
        else:
            snapshot = RuntimeHealthSnapshot()  # an earlier server's snapshot says nothing now
            starting = state.pid_file_pid != state.pid  # it writes its PID file after that
            if starting and _just_started(state.identity, fields.startup_timeout_seconds):
                # It holds its lock but has not written its first snapshot yet: it is
                # starting, as that snapshot will say a moment later.
                snapshot.state = "starting"
                fresh = True
    blocked = None
    if state.running and not fresh:
        blocked = _loop_stall(snapshot, fields.heartbeat_interval)
    status = Status(
        server=fields.server_name,
        condition=state.condition.value,
        pid=_server_pid(state, snapshot),
        state=snapshot.state if state.running else None,
        url=snapshot.url or (fields.url if state.running else None),
        snapshot_age_seconds=age,
        snapshot_fresh=fresh,
        ttl_seconds=fields.health_ttl_seconds,
        reason=state.reason,
        cache_root=str(paths.cache_root),
        log_file=str(paths.log),
        loop_blocked_seconds=blocked,
        uptime_seconds=_uptime(snapshot) if state.running else None,
    )
    if supervision is not None:
        status = status._replace(
            supervisor_pid=supervision.supervisor_pid if state.running else None,
            restarts=supervision.restarts,
            last_exit=supervision.last_exit,
            reason=supervision.reason
            if not state.running and supervision.reason
            else status.reason,
        )
    return Observed(status, snapshot, state)


def observe_quietly(fields: LifecycleFields) -> Status:
    """As `observe`, but never raising (`ls`): a server whose files cannot be read is
    reported as such, and does not hide the others."""
    paths = ServerPaths.for_settings(fields)
    try:
        return observe(fields).status
    except LifecycleError as exc:
        reason = exc.message
    except OSError as exc:  # one unreadable folder must not hide the others
        reason = f"cannot read it: {exc.strerror or exc}"
    return Status(
        server=paths.server_name,
        condition=UNREADABLE,
        pid=None,
        state=None,
        url=None,
        snapshot_age_seconds=None,
        snapshot_fresh=False,
        ttl_seconds=fields.health_ttl_seconds,
        reason=reason,
        cache_root=str(paths.cache_root),
        log_file=str(paths.log),
    )


def _server_pid(state: ServerState, snapshot: RuntimeHealthSnapshot) -> int | None:
    """The server's PID: the lock holder's, or, under a supervisor, its server's (none while
    the supervisor waits to start it again)."""
    if not state.running or not snapshot.pid:
        return state.pid
    return None if snapshot.state == "restarting" else snapshot.pid


def _uptime(snapshot: RuntimeHealthSnapshot) -> float | None:
    started = uptime_seconds(snapshot)
    return None if started is None else round(started, 1)


def _loop_stall(snapshot: RuntimeHealthSnapshot, heartbeat: float) -> float | None:
    """How long the server's event loop has not turned, if it is longer than a heartbeat
    (judged on the monotonic clock of the boot that wrote the snapshot)."""
    turned, beat = snapshot.loop_turned_monotonic, snapshot.heartbeat_monotonic
    if turned is None or beat is None or snapshot.boot_id != boot_id():
        return None
    now = time.monotonic()
    if now - beat > 2 * heartbeat:
        return None  # the heartbeat itself is late: a frozen process, not (only) its loop
    stall = now - turned
    return round(stall, 1) if stall > heartbeat else None


def _just_started(identity: ProcessIdentity | None, startup_timeout: float) -> bool:
    return identity is not None and 0 <= time.time() - identity.create_time <= startup_timeout
