"""Fixtures that run the real CLI in real processes and never leave one behind."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from mcp_lifecycle.files.kernel import PORTABLE_ENV
from mcp_lifecycle.testing import CliResult as Result
from mcp_lifecycle.testing import free_port, gone, wait_for
from tests import forkserver
from tests.forkserver import ForkServer

pytest_plugins = ["pytester"]

TESTS = Path(__file__).parent
TOY = TESTS / "servers" / "toy_server.py"
SESSION_TOKEN = uuid.uuid4().hex
# Seconds between two looks of a wait that runs a CLI call to look: each is a process (a tenth
# of a second of CPU under coverage), and at wait_for's default of 0.02 s a wait of a few
# seconds would take a core from every other test.
CLI_POLL = 0.25
TOKEN_VAR = "MCP_LIFECYCLE_TEST_TOKEN"


def processes_with_token(token: str) -> list[psutil.Process]:
    """Processes this test run started: they inherit the token through their environment."""
    if not os.path.isdir("/proc/self"):
        return _processes_with_token_from_psutil(token)
    # Read raw: every test looks once or more, and a psutil object per process (under the
    # coverage tracer) cost 11 ms a look with 160 processes running, a third of it this way.
    wanted = f"\0{TOKEN_VAR}={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                if wanted not in b"\0" + environ.read():
                    continue
            # Through the object, which names the process that has this PID now (psutil
            # refuses to signal it once the PID is another's): one that just ended is not
            # taken for a stranger that got its PID.
            proc = psutil.Process(int(name))
            if _carries(proc, token):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _processes_with_token_from_psutil(token: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if _carries(proc, token):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _carries(proc: psutil.Process, token: str) -> bool:
    return proc.environ().get(TOKEN_VAR, "").startswith(token)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def describe(procs: list[psutil.Process]) -> str:
    """Who a leaked process is (its parent and command), for the failure message."""
    lines = []
    for proc in procs:
        try:
            lines.append(f"{proc.pid} (parent {proc.ppid()}, {proc.status()}): {proc.cmdline()}")
        except psutil.Error:
            lines.append(f"{proc.pid} (gone)")
    return "; ".join(lines)


def live_processes_with_token(token: str) -> list[psutil.Process]:
    """Those of them that still run (a zombie never will)."""
    return [proc for proc in processes_with_token(token) if _running(proc)]


def kill_processes_with_token(token: str) -> list[str]:
    """SIGKILL what a test left running, and say who it was."""
    procs = live_processes_with_token(token)
    who = describe(procs)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)
    return [who] if procs else []


def run_cli(
    forks: ForkServer | None, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> Result:
    """A CLI call of a test (a fork of the warm interpreter where it can be one): never a
    traceback in front of the user."""
    proc = forkserver.run(forks, argv, env, cwd, timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Lifecycle:
    """Runs a server CLI (`python <script> ...`) with an isolated cache root and environment."""

    cache_root: Path
    marks: Path
    env: dict[str, str]
    script: Path = TOY
    name: str = "toy"
    launcher: list[str] = field(default_factory=list)
    forks: ForkServer | None = None  # runs the CLI calls as forks of a warm interpreter

    def command(self, *args: str) -> list[str]:
        return [*(self.launcher or [sys.executable, str(self.script)]), *args]

    def run(self, *args: str, timeout: float = 60, cwd: Path | None = None, **env: str) -> Result:
        return run_cli(
            self.forks, self.command(*args), {**self.env, **env}, cwd or self.marks, timeout
        )

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env, **env},
            cwd=self.marks,
            stdin=subprocess.DEVNULL,
        )

    @contextlib.contextmanager
    def foreground(self, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
        """`start --foreground` in a child of the test; killed afterwards if it still runs."""
        proc = self.popen("start", "--foreground", *args, **env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    @property
    def pid_file(self) -> Path:
        return self.cache_root / f"{self.name}.pid"

    @property
    def lock_file(self) -> Path:
        return self.cache_root / f"{self.name}.lock"

    @property
    def snapshot_file(self) -> Path:
        return self.cache_root / "runtime_health.json"

    @property
    def log_file(self) -> Path:
        return self.cache_root / f"{self.name}.log"

    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def pid_in(self, cache_root: Path) -> int:
        return int((cache_root / f"{self.name}.pid").read_text())

    def client(self, url: str) -> Any:
        """The official MCP client, connected with the server's token, as its owner's."""
        from mcp_lifecycle.transports.access import read_token
        from mcp_lifecycle.transports.probe import connect

        return connect(url, read_token(self.cache_root / f"{self.name}.token"))

    def snapshot(self) -> dict[str, Any]:
        return dict(json.loads(self.snapshot_file.read_text()))

    def set_env(self, **env: str) -> None:
        self.env.update(env)


@pytest.fixture(autouse=True, scope="session")
def _private_user_folders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the settings cache and the registry of running servers of the CLIs the tests run
    out of the real user's folders."""
    names = ("XDG_CACHE_HOME", "XDG_STATE_HOME")
    old = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in old.items():
        if value is None:
            del os.environ[name]
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def forks(_private_user_folders: None) -> Iterator[ForkServer | None]:
    """One warm interpreter per test worker for the CLI calls (see tests/forkserver.py);
    MCP_LIFECYCLE_TEST_EXEC=1 runs every call with exec instead."""
    if os.environ.get("MCP_LIFECYCLE_TEST_EXEC"):
        yield None
        return
    # Its forks carry the session's token: one left running is found and killed at the end.
    # PYTHONUNBUFFERED as every test's calls have it: the streams are made at start-up.
    env = {**os.environ, TOKEN_VAR: f"{SESSION_TOKEN}-forkserver", "PYTHONUNBUFFERED": "1"}
    server = ForkServer(env)
    yield server
    server.close()


def new_test_token() -> str:
    """A token of this run: every process started with it is found and killed afterwards."""
    return f"{SESSION_TOKEN}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def test_token() -> str:
    return new_test_token()


# What makes coverage measure a subprocess (coverage's `patch = ["subprocess"]`).
SUBPROCESS_COVERAGE = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
# In a process's environment, empty, they keep coverage out of it: for processes that run none
# of our code (a third-party server) or only paths other tests measure, where coverage (a third
# of a second for a process that imports the MCP SDK) would only cost.
UNMEASURED = dict.fromkeys(SUBPROCESS_COVERAGE, "")


@contextlib.contextmanager
def isolated_lifecycle(
    root: Path, token: str, forks: ForkServer | None, *, bare: bool = False
) -> Iterator[Lifecycle]:
    """A Lifecycle whose files live under `root`; whatever it left running with `token` is
    killed afterwards, and fails the test."""
    cache_root = root / "cache"
    marks = root / "work"
    marks.mkdir()
    # The portable pass's switch (set by tests/portable) is the pass's, not a test's: kept, a
    # call may still be a fork of the warm interpreter, which has the same switch.
    env = {
        key: value
        for key, value in os.environ.items()
        if key == PORTABLE_ENV or not key.startswith(("MCP_SERVER_", "MCP_LIFECYCLE_", "TOY_"))
    }
    if bare:
        env.update(UNMEASURED)
    env.update(
        {
            TOKEN_VAR: token,
            "MCP_SERVER_CACHE_ROOT": str(cache_root),
            "MCP_SERVER_HEALTH_TTL_SECONDS": "10",
            "MCP_SERVER_STOP_TIMEOUT_SECONDS": "5",
            "MCP_SERVER_STARTUP_TIMEOUT_SECONDS": "20",
            "TOY_MARKS": str(marks),
            "PYTHONUNBUFFERED": "1",
        }
    )
    try:
        yield Lifecycle(cache_root=cache_root, marks=marks, env=env, forks=None if bare else forks)
    finally:
        leaked = kill_processes_with_token(token)
    assert not leaked, f"the test left processes running: {leaked}"


@pytest.fixture
def lifecycle(
    tmp_path: Path,
    test_token: str,
    request: pytest.FixtureRequest,
    forks: ForkServer | None,
) -> Iterator[Lifecycle]:
    # A test that runs the same paths dozens of times (concurrent starts, a kill at every
    # moment, a long load) adds time under coverage, not coverage: its processes run bare.
    bare = request.node.get_closest_marker("repetitive") is not None
    with isolated_lifecycle(tmp_path, test_token, forks, bare=bare) as lifecycle:
        yield lifecycle


def pytest_configure(config: pytest.Config) -> None:
    # Run as a background job (`bash scripts/test.sh &`) or under nohup, pytest starts with
    # SIGINT ignored, and every process the tests start would inherit that: the tests that
    # press Ctrl-C on a CLI need it handled, as in a terminal (a handled signal is reset to
    # the default by exec).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_finish(session: pytest.Session) -> None:
    # What a worker has imported and collected by now (the libraries, the test modules) lives
    # until the run ends: frozen, the full collections during the run no longer walk it. They
    # took ~8% of a worker's CPU, most of it in a handful of full collections.
    gc.freeze()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = kill_processes_with_token(SESSION_TOKEN)
    if leaked:
        print(f"\nkilled processes the test run left behind: {leaked}", file=sys.stderr)
        session.exitstatus = 1


__all__ = ["Lifecycle", "Result", "free_port", "gone", "signal", "wait_for"]


@pytest.fixture
def spawn(test_token: str) -> Iterator[Any]:
    """Start a helper process (a stranger, an impostor); it is killed by PID afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        env = {**os.environ, TOKEN_VAR: test_token, **kwargs.pop("env", {})}
        proc = subprocess.Popen(args, env=env, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
