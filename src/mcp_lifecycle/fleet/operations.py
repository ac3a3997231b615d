"""up, down and restart over many members at once: each one as `start` and `stop` do it for a
server of ours, in parallel, every outcome kept (one failure never hides another)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mcp_lifecycle.control.start import StartResult
from mcp_lifecycle.control.stop import StopResult
from mcp_lifecycle.errors import (
    AlreadyRunning,
    ConfigurationError,
    Interrupted,
    LifecycleError,
    NotRunning,
    StalePid,
    os_error,
)
from mcp_lifecycle.fleet.members import SERVE_COMMAND, Member
from mcp_lifecycle.fleet.origin import record


@dataclass(frozen=True)
class Outcome:
    """What became of one member: `done` (a StartResult or StopResult), a `note` when there
    was nothing to do, or the `error`."""

    member: Member
    done: StartResult | StopResult | None = None
    note: str | None = None
    error: LifecycleError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def up(members: list[Member], timeout: float | None) -> list[Outcome]:
    """Start every member; on Ctrl-C, take back all this `up` started, the servers already
    ready included, so an interrupted `up` leaves the fleet as it found it."""

    def take_back(finished: list[Outcome]) -> None:
        started = [o.member for o in finished if isinstance(o.done, StartResult)]
        if started:
            _each(started, lambda member, _: _down(member, timeout))
        names = ", ".join(member.name for member in started)
        raise Interrupted(
            "interrupted; stopped what this `up` had started" + (f" ({names})" if names else "")
        )

    return _each(members, lambda member, cancelled: _up(member, timeout, cancelled), take_back)


def down(members: list[Member], timeout: float | None) -> list[Outcome]:
    return _each(members, lambda member, _: _down(member, timeout))


def restart(members: list[Member], timeout: float | None) -> list[Outcome]:
    def again(member: Member, cancelled: Callable[[], bool]) -> Outcome:
        stopped = _down(member, timeout)
        return stopped if not stopped.ok else _up(member, timeout, cancelled)

    return _each(members, again)


def _up(member: Member, timeout: float | None, cancelled: Callable[[], bool]) -> Outcome:
    from mcp_lifecycle.control.start import start_detached

    if not member.entry.started_by_us:
        return Outcome(member, note=f"runs elsewhere ({member.url}); only probed")
    try:
        started = start_detached(
            member.fields,
            SERVE_COMMAND,
            member.flags,
            timeout or member.fields.startup_timeout_seconds,
            env=member.environment(),
            cancelled=cancelled,
        )
    except AlreadyRunning:
        elsewhere = member.started_elsewhere()
        if elsewhere is not None:
            raise AlreadyRunning(
                f"a server named {member.name} is already running, but {elsewhere}",
                hint=f"give the server here another name in {member.fleet_file}",
            ) from None
        return Outcome(member, note="already running")
    record(member.paths, member.fleet_file, started.pid)
    return Outcome(member, done=started)


def _down(member: Member, timeout: float | None) -> Outcome:
    from mcp_lifecycle.control.stop import stop_server
    from mcp_lifecycle.files.paths import ServerPaths

    if not member.entry.started_by_us:
        return Outcome(member, note="runs elsewhere; not ours to stop")
    elsewhere = member.started_elsewhere()
    if elsewhere is not None:
        raise ConfigurationError(
            f"a server named {member.name} runs, but {elsewhere}: not stopping it",
            hint=f"stop it from where it was started, or rename the server in {member.fleet_file}",
        )
    try:
        stopped = stop_server(
            ServerPaths.for_settings(member.fields),
            timeout or member.fields.stop_timeout_seconds,
        )
    except NotRunning:
        return Outcome(member, note="not running")
    except StalePid as stale:
        return Outcome(member, note=stale.message)  # it had crashed: nothing to stop
    return Outcome(member, done=stopped)


def _each(
    members: list[Member],
    act: Callable[[Member, Callable[[], bool]], Outcome],
    interrupted: Callable[[list[Outcome]], None] | None = None,
) -> list[Outcome]:
    """`act` on every member at once; every outcome is kept, whatever one of them raised. On
    Ctrl-C the waits are cancelled (what they started is taken back), then `interrupted` gets
    the outcomes that had come before it (the KeyboardInterrupt goes on if it returns)."""
    cancel = threading.Event()

    def guarded(member: Member) -> Outcome:
        try:
            return act(member, cancel.is_set)
        except LifecycleError as error:
            return Outcome(member, error=error)
        except OSError as error:
            return Outcome(member, error=os_error(error))
        except Exception as error:  # noqa: BLE001 - one member's bug must not hide the rest
            return Outcome(member, error=LifecycleError(f"{type(error).__name__}: {error}"))

    pool = ThreadPoolExecutor(max_workers=max(1, min(len(members), 32)))
    futures = []
    try:
        for member in members:
            futures.append(pool.submit(guarded, member))
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        cancel.set()
        pool.shutdown(wait=True)
        if interrupted is not None:
            interrupted([f.result() for f in futures if f.done() and not f.cancelled()])
        raise
    finally:
        pool.shutdown(wait=True)
