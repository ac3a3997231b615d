"""The supervisor: a small process of ours that holds a server's claim, runs the server as its
child, and brings it back when it exits, per its restart policy.

It holds the lock, the identity record and the PID file, so every proof rule works as for an
unsupervised server: `stop` verifies and signals the supervisor, which stops the server and
then itself (a stop is final); `reload` reaches the server through it. The server runs in a
process group of its own and dies with the supervisor (PR_SET_PDEATHSIG, or its heartbeat
noticing the new parent), so no server runs on unmanaged.

It runs as `python -m mcp_lifecycle.server.supervisor`, without the server's code, Typer or
pydantic: its whole configuration arrives as one JSON `SupervisorSpec`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from mcp_lifecycle import handoff
from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.snapshot import RuntimeHealthSnapshot, update_runtime_health
from mcp_lifecycle.files.supervision import SupervisionRecord, remove_record, write_record
from mcp_lifecycle.handoff import Answer, ReadyPipe
from mcp_lifecycle.server.claim import ServerClaim
from mcp_lifecycle.server.server_process import Exit, ServerProcess
from mcp_lifecycle.server.signals import SignalHandler
from mcp_lifecycle.settings.fields import LifecycleFields

logger = logging.getLogger("mcp_lifecycle.supervisor")

SPEC_ENV = "MCP_LIFECYCLE_SUPERVISOR_SPEC"
MAX_BACKOFF_SECONDS = 30.0
# How often the supervisor looks up from waiting (a stop wakes it at once, through the server).
_POLL_SECONDS = 0.25
_MEMORY_CHECKS = 2  # consecutive checks above the limit before a restart
# `stop` SIGKILLs our group this long after its timeout: we stop the server before that.
_STOP_MARGIN_SECONDS = 2.5


class SupervisorSpec(NamedTuple):
    fields: dict[str, Any]  # the server's lifecycle fields (LifecycleFields.to_json)
    policy: str
    max_retries: int
    window_seconds: float
    backoff_seconds: float
    command: list[str]  # runs the server: this CLI's `start --foreground`
    env: dict[str, str]  # handed to the server on top of ours (its flags)
    max_memory_mb: int | None
    watch: list[str]  # restart on a change to these paths (`start --watch`)
    registry: str  # the registry's folder (`registry.running_dir()`, found by the starter)

    def to_json(self) -> str:
        return json.dumps(self._asdict())

    @classmethod
    def from_json(cls, text: str) -> SupervisorSpec:
        return cls(**json.loads(text))


class RestartBudget:
    """How many restarts a crash loop may use: `max_retries` within a sliding window, each
    after a delay that doubles from `backoff` up to 30 s (and starts again once a run lasted a
    whole window)."""

    def __init__(self, max_retries: int, window: float, backoff: float) -> None:
        self._max_retries = max_retries
        self._window = window
        self._backoff = backoff
        self._restarted_at: deque[float] = deque()
        self._crashes = 0  # in a row

    def exhausted(self) -> bool:
        now = time.monotonic()
        while self._restarted_at and now - self._restarted_at[0] > self._window:
            self._restarted_at.popleft()
        return len(self._restarted_at) >= self._max_retries

    def delay(self, uptime: float) -> float:
        self._crashes = 1 if uptime >= self._window else self._crashes + 1
        return float(min(self._backoff * 2 ** (self._crashes - 1), MAX_BACKOFF_SECONDS))

    def spend(self) -> None:
        self._restarted_at.append(time.monotonic())


class Supervisor:
    def __init__(self, spec: SupervisorSpec, pipe: ReadyPipe) -> None:
        name = spec.fields["server_name"]
        fields = LifecycleFields.from_json(spec.fields, name)
        if fields is None:
            raise LifecycleError(f"the supervisor of {name} got malformed settings")
        self.spec = spec
        self.fields = fields
        self.paths = ServerPaths.for_settings(fields)
        self._claim = ServerClaim(self.paths, registry=Path(spec.registry))
        self._pipe = pipe
        self._record = SupervisionRecord(os.getpid(), spec.policy)
        self._budget = RestartBudget(spec.max_retries, spec.window_seconds, spec.backoff_seconds)
        self._server: ServerProcess | None = None
        self._stopping = False
        # Why the running server is to be replaced, and whether that spends the retry budget
        # (a memory limit does; a source change, asked for by a developer, does not).
        self._restart_for: tuple[str, bool] | None = None
        self._reload_pending = False  # a SIGHUP that came while no server was ready
        self._ready = False
        self._watcher = SourceWatcher(spec.watch, self._on_change)

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        # The handlers first: from the moment the lock is ours, `stop` may signal us.
        signals = SignalHandler(self._on_stop, self._on_reload).install()
        try:
            self._claim.take()
        except LifecycleError as exc:
            self._pipe.send_failure(int(exc.exit_code), exc.message, exc.hint)
            self._claim.release()
            signals.restore()
            return int(exc.exit_code)
        gave_up = False
        try:
            # The snapshot first: until the PID file names us, a reader that finds no snapshot
            # of ours knows we are starting, not stale.
            self._snapshot("starting")
            self._claim.write_pid_file()
            self._claim.register(self.fields.to_json())
            self._save()
            self._watcher.start()
            code = self._supervise()
            gave_up = self._record.reason is not None
            return code
        except LifecycleError as exc:
            # The first start hears of it; a later one is recorded for `status`.
            self._pipe.send_failure(int(exc.exit_code), exc.message, exc.hint)
            self._update(reason=exc.message)
            gave_up = True
            return int(exc.exit_code)
        finally:
            self._watcher.stop()
            if self._server is not None:
                self._server.stop()
            self._snapshot("failed" if gave_up else "stopped", final=True)
            if not gave_up:
                remove_record(self._claim.files.supervision)
            self._claim.remove_pid_file()
            self._claim.unregister()
            if self._stopping:
                self._pipe.send_stopped()  # only a `start` still waiting hears it
            self._pipe.close()
            self._claim.release()
            signals.restore()
            logger.info("the supervisor of %s stopped", self.fields.server_name)

    def _supervise(self) -> int:
        first = True
        while not self._stopping:
            answer = self._spawn()
            if first:
                first = False
                # The first start answers `start` as an unsupervised one would: no retries.
                if self._stopping:
                    self._pipe.send_stopped()
                    return 0
                if answer is None or not answer.ready:
                    self._pipe.send_failure(*_failure(answer, self.fields))
                    return 1
                self._pipe.send_ready()
            if self._ready and self._reload_pending and self._server is not None:
                self._reload_pending = False
                self._server.reload()
            ended = self._wait_server()
            self._ready = False  # a reload from now on waits for the next server
            if self._stopping:
                return 0
            self._record = self._record._replace(last_exit=ended.as_record())
            logger.warning("%s ended (%s)", self.fields.server_name, ended.describe())
            asked, self._restart_for = self._restart_for, None
            why = asked[0] if asked else None
            if asked is not None and not asked[1]:
                logger.info("restarting %s: %s", self.fields.server_name, why)
                self._count_restart()
                continue
            if asked is None and not ended.failed and self.spec.policy == "on-failure":
                logger.info(
                    "%s exited cleanly; not restarting (on-failure)", self.fields.server_name
                )
                self._update(reason="the server exited cleanly (restart_policy on-failure)")
                return 0
            # A crash, or a memory limit: both spend the budget and wait the backoff, so a
            # server that grows past its limit at once cannot loop.
            if not self._may_restart(ended, asked=asked is not None):
                return 1
            delay = self._budget.delay(ended.uptime)
            logger.info(
                "restarting %s in %.1fs%s",
                self.fields.server_name,
                delay,
                f": {why}" if why else "",
            )
            self._snapshot("restarting")
            if not self._sleep(delay):
                return 0
            self._count_restart()
        return 0

    def _may_restart(self, ended: Exit, asked: bool) -> bool:
        """`asked`: the restart is ours (a memory limit), whatever the policy says of exits."""
        never = self.spec.policy == "never" and not asked
        if not never and not self._budget.exhausted():
            return True
        reason = (
            f"it ended with {ended.describe()} (restart_policy never)"
            if never
            else f"gave up after {self.spec.max_retries} restarts within "
            f"{self.spec.window_seconds:g}s; it last ended with {ended.describe()}"
        )
        logger.error("%s: %s", self.fields.server_name, reason)
        self._update(reason=reason)
        return False

    def _count_restart(self) -> None:
        self._budget.spend()
        self._update(restarts=self._record.restarts + 1)

    # -- the server process ------------------------------------------------------------------

    def _spawn(self) -> Answer | None:
        """Start the server and wait until it is ready (None: not within the startup timeout,
        or a stop came)."""
        self._snapshot("starting")
        self._ready = False
        if self._restart_for is not None and not self._restart_for[1]:
            self._restart_for = None  # the server about to start reads the changed files
        # The server gets less than `stop` gives us, so that we, not `stop`'s SIGKILL of our
        # group, end it and what it started.
        self._server = ServerProcess(
            self.spec.command,
            self.spec.env,
            max(0.5, self.fields.stop_timeout_seconds - _STOP_MARGIN_SECONDS),
        )
        answer = self._server.start(self.fields.startup_timeout_seconds, lambda: self._stopping)
        self._update(server_pid=self._server.pid)
        self._ready = answer is not None and answer.ready
        return answer

    def _wait_server(self) -> Exit:
        server = self._server
        assert server is not None
        over_limit = 0
        next_check = time.monotonic()
        while (ended := server.wait(_POLL_SECONDS)) is None:
            if self._stopping or self._restart_for is not None:
                server.stop()
            elif self.spec.max_memory_mb and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.fields.heartbeat_interval
                rss = server.rss() or 0
                over_limit = over_limit + 1 if rss > self.spec.max_memory_mb * 2**20 else 0
                if over_limit >= _MEMORY_CHECKS:
                    limit = self.spec.max_memory_mb
                    self._restart_for = (f"its memory stayed above {limit} MB", True)
        return ended

    # -- signals (main thread, between bytecodes: set flags, forward, never block) -----------

    def _on_stop(self) -> None:
        repeat = self._stopping
        self._stopping = True
        if self._server is not None:
            # Once, and again on a repeat signal, which the server takes as "stop now".
            self._server.terminate(force=repeat)
        if not repeat:
            logger.info("stopping %s (final: nothing restarts it)", self.fields.server_name)

    def _on_reload(self) -> None:
        if self._ready and self._server is not None:
            self._server.reload()
        else:
            self._reload_pending = True  # no server has its handlers yet: it gets it at READY

    # -- watching ----------------------------------------------------------------------------

    def _on_change(self, changed: list[str]) -> None:
        if self._ready:
            self._restart_for = (f"changed: {', '.join(changed[:3])}", False)

    # -- records -----------------------------------------------------------------------------

    def _sleep(self, seconds: float) -> bool:
        """False if a stop came while waiting."""
        deadline = time.monotonic() + seconds
        next_beat = time.monotonic() + self.fields.heartbeat_interval
        while time.monotonic() < deadline:
            if self._stopping:
                return False
            time.sleep(_POLL_SECONDS)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.fields.heartbeat_interval
                self._snapshot("restarting")
        return not self._stopping

    def _update(self, **changes: Any) -> None:
        """Change the record (a NamedTuple: replaced, never mutated) and save it."""
        self._record = self._record._replace(**changes)
        self._save()

    def _save(self) -> None:
        try:
            write_record(self._claim.files.supervision, self._record)
        except (OSError, LifecycleError) as exc:
            logger.warning("could not record the supervisor's state: %s", exc)

    def _snapshot(self, state: str, final: bool = False) -> None:
        """Vouch for the server while no server of it can: starting, or between two runs."""
        me = os.getpid()

        def mutate(snapshot: RuntimeHealthSnapshot) -> None:
            snapshot.pid = me
            snapshot.orchestrator_pid = me
            snapshot.server_name = self.fields.server_name
            snapshot.state = state
            snapshot.lifecycle_state = {"state": state}
            snapshot.activity_state = {"accepting_work": False}
            snapshot.watchers_running = not final
            snapshot.url = self.fields.url
            snapshot.started_at = None  # the next run's, once it starts
            snapshot.started_monotonic = None
            snapshot.loop_turned_monotonic = None
            snapshot.heartbeat_monotonic = time.monotonic()
            snapshot.touch()

        try:
            update_runtime_health(self._claim.files.snapshot, mutate)
        except (OSError, LifecycleError) as exc:
            logger.warning("could not write the health snapshot: %s", exc)


class SourceWatcher:
    """`start --watch`: tells of changed Python files under the given paths (watchfiles, in a
    thread of its own, debounced)."""

    def __init__(self, paths: list[str], on_change: Callable[[list[str]], None]) -> None:
        self._paths = paths
        self._on_change = on_change
        self._stop = threading.Event()

    def start(self) -> None:
        if self._paths:
            threading.Thread(target=self._run, name="mcp-lifecycle-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import watchfiles

        from mcp_lifecycle.server.signals import keep_signals_for_the_main_thread

        keep_signals_for_the_main_thread()
        for changes in watchfiles.watch(
            *self._paths,
            watch_filter=watchfiles.PythonFilter(),
            stop_event=self._stop,
            debounce=400,
            raise_interrupt=False,
        ):
            self._on_change(sorted({os.path.basename(path) for _, path in changes}))


def _failure(answer: Answer | None, fields: LifecycleFields) -> tuple[int, str, str | None]:
    if answer is None:
        timeout = fields.startup_timeout_seconds
        return 7, f"the server was not ready within {timeout:g}s; stopped it", None
    if answer.code is not None:
        return answer.code, answer.message, answer.hint or None
    return 1, "the server exited before it was ready", "see `logs`"


def main() -> None:
    """Run as the supervisor of one server; the spec and the readiness pipe come in the
    environment from `start`."""
    from mcp_lifecycle.logs import configure_logging

    handed = handoff.take_from_environ()
    spec = SupervisorSpec.from_json(os.environ.pop(SPEC_ENV))
    configure_logging(os.environ.pop("MCP_LIFECYCLE_SUPERVISOR_LOG_LEVEL", "INFO"))
    pipe = ReadyPipe(handed.ready_fd)
    try:
        supervisor = Supervisor(spec, pipe)
    except LifecycleError as exc:
        pipe.send_failure(int(exc.exit_code), exc.message, exc.hint)
        sys.exit(int(exc.exit_code))
    sys.exit(supervisor.run())


if __name__ == "__main__":
    main()
