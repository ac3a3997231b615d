"""Lifecycle checks for any server built on MCPServerCLIFactory: a pytest plugin.

In the server's own test suite::

    from mcp_lifecycle.testing import LifecycleSuite

    class TestMyServerLifecycle(LifecycleSuite):
        command = ["my-server"]   # how to run the server's CLI (a console script, or
                                  # [sys.executable, "-m", "my_server.cli"])
        http = True               # it serves MCP over HTTP: a free port is chosen per test

Each inherited test starts the real server in a private cache root and checks one part of its
lifecycle: start returns once ready, status, a live probe (with an MCP handshake for HTTP
servers), stop, a crash, a hung stop, a double start. A stdio server (`transport: stdio`, found
out from its `config`) is never detached, since its MCP client owns its process: for it the
suite checks that `start` refuses to detach it and that `health --probe` gets an MCP handshake
from a private instance, and skips the rest, saying why. Every process a test starts is stopped,
even when the test fails. The module imports only the standard library and pytest, so loading
the plugin costs nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mcp_lifecycle.control.process import leads_session
from mcp_lifecycle.files.identity import ProcessIdentity, identity_of, mismatch_reason

# Below Linux's ephemeral range (32768 and up), where the kernel never hands out a port on
# its own: a port chosen by binding port 0 could be given again, to another test's server or
# to any outgoing connection, while a test's server is down for a restart. Each pytest-xdist
# worker takes its own slice, and a process walks through its slice before reusing a port.
_PORTS_FROM, _PORTS_PER_WORKER, _WORKER_SLICES = 20000, 1000, 12
_turns = itertools.count(os.getpid())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, from this pytest-xdist worker's own slice
    (up to 12 workers; more share slices), so other workers of the run are not given it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % _WORKER_SLICES if worker.isdigit() else 0
    first = _PORTS_FROM + index * _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = first + next(_turns) % _PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # the whole slice is taken: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        try:
            return json.loads(self.out)
        except ValueError:
            raise AssertionError(
                f"expected JSON, got exit {self.code}\nstdout: {self.out[:800]}\n"
                f"stderr: {self.err[:800]}"
            ) from None


@dataclass
class LifecycleCLI:
    """Runs the server's CLI with a private cache root; remembers every server PID it saw."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    seen: set[ProcessIdentity] = field(default_factory=set)
    stdio: bool = False

    def detached_only(self) -> None:
        if self.stdio:
            pytest.skip("a stdio server is never detached: its MCP client owns its process")

    def run(self, *args: str, timeout: float = 60) -> CliResult:
        result = self._run(*args, timeout=timeout)
        if args[:1] == ("start",) and "--json" in args and result.code == 0:
            self._remember(result.json().get("pid"))
        return result

    def _run(self, *args: str, timeout: float = 60) -> CliResult:
        try:
            proc = subprocess.run(
                [*self.command, *args],
                capture_output=True,
                text=True,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except OSError as exc:
            pytest.fail(
                f"cannot run {self.command}: {exc}; set `command` to how your server's CLI "
                "is run, e.g. [sys.executable, '-m', 'my_server.cli']",
                pytrace=False,
            )
        for stream in (proc.stdout, proc.stderr):
            assert "Traceback" not in stream, f"a traceback reached the user:\n{stream}"
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def transport(self) -> str | None:
        """The transport the server's settings declare (None: HTTP or none)."""
        config = self.run("config", "--json")
        assert config.code == 0, f"`config` failed (exit {config.code}):\n{config.err}"
        value = config.json().get("settings", {}).get("transport", {}).get("value")
        return value if isinstance(value, str) else None

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.run("status", "--json").json()
        if data.get("running") is True:  # verified by the CLI as this server: never a stranger
            self._remember(data.get("pid"))
        return data

    def _remember(self, pid: object) -> None:
        import psutil

        if isinstance(pid, int) and pid > 1:
            with contextlib.suppress(psutil.Error):
                self.seen.add(identity_of(pid))

    def server_pid(self) -> int:
        pid = self.status()["pid"]
        assert isinstance(pid, int), "the server reports no PID"
        return pid

    def kill_leftovers(self) -> list[int]:
        """SIGKILL the servers this CLI started that still run (the same processes only)."""
        killed = []
        for record in self.seen:
            pid = record.pid
            if mismatch_reason(pid, record) is None:  # the same process, still running
                if leads_session(pid):
                    os.killpg(pid, signal.SIGKILL)  # a detached server: its whole group
                else:
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return killed


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Whether `predicate()` became true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it will never run again)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class LifecycleSuite:
    """Subclass it, set `command`, and pytest runs these checks against your server."""

    command: ClassVar[list[str]] = []
    http: ClassVar[bool] = False
    env: ClassVar[dict[str, str]] = {}
    stop_timeout: ClassVar[float] = 10.0

    @pytest.fixture
    def lifecycle_cli(self, tmp_path: Path) -> Iterator[LifecycleCLI]:
        assert self.command, "set `command` to how your server's CLI is run"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_SERVER_")}
        env.update(self.env)
        env["MCP_SERVER_CACHE_ROOT"] = str(tmp_path / "cache")
        env["MCP_SERVER_HEALTH_TTL_SECONDS"] = "10"
        if self.http:
            env["MCP_SERVER_PORT"] = str(free_port())
        cli = LifecycleCLI(list(self.command), env, tmp_path)
        cli.stdio = cli.transport() == "stdio"
        try:
            yield cli
        finally:
            try:
                cli.status()  # remember a server the test started without looking at it
                cli.run("stop", "--timeout", str(self.stop_timeout))
            finally:
                leftovers = cli.kill_leftovers()
        assert not leftovers, f"servers survived the test and were killed: {leftovers}"

    def test_start_returns_once_ready(self, lifecycle_cli: LifecycleCLI) -> None:
        if lifecycle_cli.stdio:
            refused = lifecycle_cli.run("start", "--json")
            assert refused.code == 5, "a stdio server must refuse to run detached"
            assert "stdio" in refused.json()["error"]
            return
        started = lifecycle_cli.run("start", "--json")
        assert started.code == 0, started.err
        status = lifecycle_cli.status()
        assert status["running"] is True
        assert status["state"] == "ready"
        assert status["pid"] == started.json()["pid"]
        assert lifecycle_cli.run("status").code == 0

    def test_probe_is_healthy(self, lifecycle_cli: LifecycleCLI) -> None:
        if lifecycle_cli.stdio:  # a private instance, spoken to over stdio
            probe = lifecycle_cli.run("health", "--probe", "--json")
            assert probe.code == 0, probe.out + probe.err
            checks = {check["name"]: check for check in probe.json()["checks"]}
            assert checks["mcp"]["ok"] is True, checks["mcp"]["detail"]
            return
        assert lifecycle_cli.run("start").code == 0
        lifecycle_cli.status()
        probe = lifecycle_cli.run("health", "--probe", "--json")
        assert probe.code == 0, probe.out
        checks = {check["name"]: check for check in probe.json()["checks"]}
        assert checks["process"]["ok"] is True
        if self.http:
            assert checks["mcp"]["ok"] is True, checks["mcp"]["detail"]

    def test_stop_ends_the_server_and_its_files(self, lifecycle_cli: LifecycleCLI) -> None:
        lifecycle_cli.detached_only()
        assert lifecycle_cli.run("start").code == 0
        pid = lifecycle_cli.server_pid()
        stopped = lifecycle_cli.run("stop", "--json", "--timeout", str(self.stop_timeout))
        assert stopped.code == 0, stopped.err
        assert stopped.json()["forced"] is False, "the server did not stop on SIGTERM"
        assert gone(pid)
        assert lifecycle_cli.run("status").code == 2
        assert lifecycle_cli.run("stop").code == 2

    def test_double_start_is_refused(self, lifecycle_cli: LifecycleCLI) -> None:
        lifecycle_cli.detached_only()
        assert lifecycle_cli.run("start").code == 0
        pid = lifecycle_cli.server_pid()
        assert lifecycle_cli.run("start").code == 3
        assert lifecycle_cli.server_pid() == pid

    def test_a_crash_is_detected_and_recovered(self, lifecycle_cli: LifecycleCLI) -> None:
        lifecycle_cli.detached_only()
        assert lifecycle_cli.run("start").code == 0
        pid = lifecycle_cli.server_pid()
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: gone(pid), 10)
        assert lifecycle_cli.run("status").code == 8
        restarted = lifecycle_cli.run("start")
        assert restarted.code == 0, restarted.err
        assert lifecycle_cli.server_pid() != pid

    def test_a_hung_server_is_killed_by_stop(self, lifecycle_cli: LifecycleCLI) -> None:
        lifecycle_cli.detached_only()
        assert lifecycle_cli.run("start").code == 0
        pid = lifecycle_cli.server_pid()
        os.kill(pid, signal.SIGSTOP)  # hung: it cannot even handle SIGTERM
        stopped = lifecycle_cli.run("stop", "--json", "--timeout", "1")
        assert stopped.code == 0, stopped.err
        assert stopped.json()["forced"] is True
        assert stopped.json()["seconds"] < 1 + 5  # its own clock, not the CLI's start-up
        assert wait_for(lambda: gone(pid), 5)
        assert lifecycle_cli.run("status").code == 2
