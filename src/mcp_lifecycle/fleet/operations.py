"""up, down and restart over many members at once: each one as `start` and `stop` do it for a
server of ours, in parallel, every outcome kept (one failure never hides another)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from mcp_lifecycle.control.start import StartResult
from mcp_lifecycle.control.stop import StopResult
from mcp_lifecycle.errors import AlreadyRunning, LifecycleError, NotRunning
from mcp_lifecycle.fleet.members import SERVE_COMMAND, Member

_T = TypeVar("_T")


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
    return _each(members, lambda member: _up(member, timeout))


def down(members: list[Member], timeout: float | None) -> list[Outcome]:
    return _each(members, lambda member: _down(member, timeout))


def restart(members: list[Member], timeout: float | None) -> list[Outcome]:
    def again(member: Member) -> Outcome:
        stopped = _down(member, timeout)
        return stopped if not stopped.ok else _up(member, timeout)

    return _each(members, again)


def _up(member: Member, timeout: float | None) -> Outcome:
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
        )
    except AlreadyRunning:
        return Outcome(member, note="already running")
    return Outcome(member, done=started)


def _down(member: Member, timeout: float | None) -> Outcome:
    from mcp_lifecycle.control.stop import stop_server
    from mcp_lifecycle.files.paths import ServerPaths

    if not member.entry.started_by_us:
        return Outcome(member, note="runs elsewhere; not ours to stop")
    try:
        stopped = stop_server(
            ServerPaths.for_settings(member.fields),
            timeout or member.fields.stop_timeout_seconds,
        )
    except NotRunning:
        return Outcome(member, note="not running")
    return Outcome(member, done=stopped)


def _each(members: list[Member], act: Callable[[Member], Outcome]) -> list[Outcome]:
    def guarded(member: Member) -> Outcome:
        try:
            return act(member)
        except LifecycleError as error:
            return Outcome(member, error=error)

    if len(members) <= 1:
        return [guarded(member) for member in members]
    with ThreadPoolExecutor(max_workers=min(len(members), 32)) as pool:
        return list(pool.map(guarded, members))
