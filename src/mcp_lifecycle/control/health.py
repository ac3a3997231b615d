"""Health reports: the server's status with the checks of its last probe, or of live probes
(`health --probe`), which are recorded in its snapshot for later `health` calls."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from mcp_lifecycle.control.status import Status, observe
from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.files.identity import boot_id
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.snapshot import (
    RuntimeHealthSnapshot,
    update_runtime_health,
    utc_now_iso,
)
from mcp_lifecycle.settings.fields import LifecycleFields

# A probe returns True/None for healthy, False or a string (the problem) for unhealthy, or raises.
Probe = Callable[[], bool | str | None]


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str
    duration_ms: float = 0.0


class HealthReport(NamedTuple):
    status: Status
    checks: list[Check]  # appended to as they run
    probed: bool = False
    checked_at: str | None = None
    stdio: bool = False

    @property
    def healthy(self) -> bool:
        if self.stdio:
            return bool(self.checks) and all(check.ok for check in self.checks)
        return (
            self.status.running
            and self.status.snapshot_fresh
            and self.status.state == "ready"
            and all(check.ok for check in self.checks)
        )

    @property
    def exit_code(self) -> ExitCode:
        """0 healthy, 4 unhealthy; a server that does not run says why as `status` does."""
        if not self.stdio and not self.status.running:
            return self.status.exit_code
        return ExitCode.SUCCESS if self.healthy else ExitCode.HEALTH_CHECK_FAILED

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.status.as_dict(),
            "healthy": self.healthy,
            "probed": self.probed,
            "checked_at": self.checked_at,
            "checks": [check._asdict() for check in self.checks],
        }


def probe_age(probe: Mapping[str, Any]) -> float | None:
    """Seconds since a recorded probe ran, as the snapshot's age is judged: the monotonic clock
    on the boot that recorded it; else the wall clock, never trusted backwards (a result
    from the future is too old to count)."""
    monotonic = probe.get("checked_monotonic")
    if isinstance(monotonic, int | float) and probe.get("boot_id") == boot_id():
        age = time.monotonic() - monotonic
    else:
        age = time.time() - _number(probe.get("checked_epoch"))
    return age if age >= 0 else None


def _token_of(paths: ServerPaths) -> str | None:
    from mcp_lifecycle.transports.access import read_token

    try:
        return read_token(paths.token)
    except (OSError, LifecycleError):
        return None


def health_from_snapshot(settings: LifecycleFields) -> HealthReport:
    """Health as the snapshot records it, including the last probe if it is recent."""
    observed = observe(settings)
    status, snapshot = observed.status, observed.snapshot
    probe = snapshot.probe
    if not (status.running and probe and isinstance(probe.get("checks"), list)):
        return HealthReport(status, [])
    checked_at = probe.get("checked_at")
    checks: list[Check] = []
    age = probe_age(probe)
    if age is not None and age <= settings.health_ttl_seconds:
        checks = [
            Check(
                name=str(item.get("name", "?")),
                ok=item.get("ok") is True,
                detail=str(item.get("detail", "")),
                duration_ms=_number(item.get("duration_ms")),
            )
            for item in probe["checks"]
            if isinstance(item, dict)
        ]
    return HealthReport(
        status, checks, checked_at=checked_at if isinstance(checked_at, str) else None
    )


def probe_health(settings: LifecycleFields, probes: Mapping[str, Probe]) -> HealthReport:
    """Run live checks now and record them in the snapshot for later `health` calls."""
    status = observe(settings).status
    report = HealthReport(status, [], probed=True, checked_at=utc_now_iso())
    if not status.running:
        return report
    report.checks.append(
        Check("process", True, f"PID {status.pid} is alive and verified as this server")
    )
    url = status.url
    if url and status.pid is not None:
        from mcp_lifecycle.transports.http_server import probe_mcp

        responder = _responder_check(url, status.pid)
        if responder is not None:
            report.checks.append(responder)
        if responder is None or responder.ok:
            token = _token_of(ServerPaths.for_settings(settings))
            report.checks.append(
                _timed("mcp", lambda: probe_mcp(url, settings.probe_timeout_seconds, token))
            )
    for name, probe in probes.items():
        report.checks.append(_timed(name, lambda probe=probe: _run_probe(probe)))  # type: ignore[misc]
    _record(settings, status.pid, report)
    return report


def probe_stdio_health(
    settings: LifecycleFields,
    command: list[str],
    probes: Mapping[str, Probe],
    env: Mapping[str, str],
) -> HealthReport:
    """A stdio server has no running instance of its own to look at: start a private one over
    stdio, hand-shake with it, and run the registered probes."""
    from mcp_lifecycle.transports.stdio_server import probe_stdio

    status = observe(settings).status
    report = HealthReport(status, [], probed=True, checked_at=utc_now_iso(), stdio=True)
    report.checks.append(
        _timed("mcp", lambda: probe_stdio(command, settings.probe_timeout_seconds, env))
    )
    for name, probe in probes.items():
        report.checks.append(_timed(name, lambda probe=probe: _run_probe(probe)))  # type: ignore[misc]
    return report


def _responder_check(url: str, server_pid: int) -> Check | None:
    """Is whoever listens on the URL's port our server (or one of its processes)?"""
    from mcp_lifecycle.transports import ports  # psutil: only for a probe

    port = urlsplit(url).port
    holder = ports.listener(port) if port else None
    if holder is None:
        return None  # nobody listens, or we may not see who: the handshake will tell
    if ports.serves_for(holder, server_pid):
        return Check("listener", True, f"port {port} is served by this server")
    return Check(
        "listener",
        False,
        f"port {port} is answered by {ports.describe(holder)}, not by this server",
    )


def _number(value: object) -> float:
    """A number from a file someone else may have written; 0 for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return 0.0


def _run_probe(probe: Probe) -> tuple[bool, str]:
    try:
        result = probe()
    except Exception as exc:  # noqa: BLE001 - a failing probe is a result, not a crash
        return False, f"{type(exc).__name__}: {exc}"
    if result is None or result is True:
        return True, "ok"
    if result is False:
        return False, "failed"
    return False, str(result)


def _timed(name: str, run: Callable[[], tuple[bool, str]]) -> Check:
    began = time.monotonic()
    ok, detail = run()
    return Check(name, ok, detail, round((time.monotonic() - began) * 1000, 1))


def _record(settings: LifecycleFields, pid: int | None, report: HealthReport) -> None:
    paths = ServerPaths.for_settings(settings)

    def mutate(snapshot: RuntimeHealthSnapshot) -> None:
        snapshot.probe = {
            "pid": pid,
            "checked_at": report.checked_at,
            "checked_epoch": time.time(),
            # CLOCK_MONOTONIC is system-wide: on this boot it ages the result exactly, whatever
            # happens to the wall clock.
            "checked_monotonic": time.monotonic(),
            "boot_id": boot_id(),
            "ok": all(check.ok for check in report.checks),
            "checks": [check._asdict() for check in report.checks],
        }

    # On failure the live result is still reported; only the record is lost.
    with contextlib.suppress(OSError, LifecycleError):
        update_runtime_health(paths.snapshot, mutate)
