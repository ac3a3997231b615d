"""The fork server answers a call as `exec` does: the suite's CLI calls rely on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import UNMEASURED
from tests.forkserver import ForkServer

SCRIPT = """\
import os, sys, time
mode = sys.argv[1]
print("argv", sys.argv[1:], "cwd", os.getcwd(), "var", os.environ.get("FS_VAR"))
print("path0", sys.path[0], "main", __name__, "file", os.path.basename(__file__))
print("to stderr", file=sys.stderr)
if mode == "exit-text":
    sys.exit("a message")
if mode == "raise":
    raise RuntimeError("boom")
if mode == "hard":
    print("unflushed?")
    os._exit(3)
if mode == "sleep":
    open(os.environ["FS_PID_FILE"], "w").write(str(os.getpid()))
    time.sleep(60)
sys.exit(int(mode))
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    forks = ForkServer({**os.environ, "PYTHONUNBUFFERED": "1"})
    yield forks
    forks.close()


@pytest.mark.parametrize("mode", ["0", "2", "exit-text", "raise", "hard"])
def test_a_call_answers_as_exec_does(server: ForkServer, tmp_path: Path, mode: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FS_VAR": "yes"}
    argv = [sys.executable, str(script), mode]
    assert server.can_run(argv, env, tmp_path)
    forked = server.run(argv, env, tmp_path, 30)
    execd = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert (forked.returncode, forked.stdout) == (execd.returncode, execd.stdout)
    # A traceback names the frames: the fork server's own come before the script's.
    assert forked.stderr.splitlines()[-1:] == execd.stderr.splitlines()[-1:]
    assert "var yes" in forked.stdout


def test_a_timeout_ends_the_call_and_leaves_nothing(server: ForkServer, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    pid_file = tmp_path / "pid"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FS_PID_FILE": str(pid_file)}
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        server.run([sys.executable, str(script), "sleep"], env, tmp_path, 1.5)
    assert time.monotonic() - began < 10
    assert "argv ['sleep']" in str(raised.value.output)
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_call_given_up_by_an_exception_is_ended(server: ForkServer, tmp_path: Path) -> None:
    """Ctrl-C or pytest-timeout in the middle of a call: as subprocess.run kills its child."""
    import signal

    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    pid_file = tmp_path / "pid"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FS_PID_FILE": str(pid_file)}

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            server.run([sys.executable, str(script), "sleep"], env, tmp_path, 30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not psutil.pid_exists(int(pid_file.read_text()))
    assert len(os.listdir("/proc/self/fd")) < 64  # the pipes of the call are closed


def test_what_a_fork_cannot_give_is_left_to_exec(server: ForkServer, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    assert not server.can_run([sys.executable, "-c", "pass"], env, tmp_path)
    assert not server.can_run([sys.executable, str(tmp_path / "missing.py")], env, tmp_path)
    assert not server.can_run([sys.executable, str(script), "start", "--foreground"], env, tmp_path)
    assert not server.can_run([sys.executable, str(script)], {**env, "PYTHONPATH": "/x"}, tmp_path)
    assert not server.can_run([sys.executable, str(script)], {**env, "LC_ALL": "C"}, tmp_path)
    assert not server.can_run(["/bin/sh", "-c", "true"], env, tmp_path)
    assert not server.can_run([sys.executable, str(script)], env, tmp_path / "no-such-folder")
    # A relative script is found from the call's folder, as the interpreter finds it.
    assert server.can_run([sys.executable, "script.py"], env, tmp_path)
    assert not server.can_run([sys.executable, "script.py"], env, tmp_path.parent)
    relative = server.run([sys.executable, "script.py", "0"], env, tmp_path, 30)
    assert relative.returncode == 0, relative.stderr


def test_a_call_finds_only_hook_free_modules_of_ours_loaded(
    server: ForkServer, tmp_path: Path
) -> None:
    """The settings model comes preloaded; the modules that register a fork hook (the server's
    runtime, the health snapshot) do not: a call imports them itself, as exec'd, and no fork
    hook of ours runs in it."""
    script = tmp_path / "loaded.py"
    script.write_text(
        "import sys\n"
        "names = ('mcp_lifecycle.settings.model', 'mcp_lifecycle.server.runtime',\n"
        "         'mcp_lifecycle.files.snapshot')\n"
        "print([name in sys.modules for name in names])\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, str(script)]
    assert server.can_run(argv, env, tmp_path)
    assert server.run(argv, env, tmp_path, 30).stdout.strip() == "[True, False, False]"


STATE = """\
import atexit, json, logging, signal, threading
def kind(number):
    handler = signal.getsignal(number)
    return handler if isinstance(handler, int) else getattr(handler, "__module__", "?")
print(json.dumps({
    "atexit": atexit._ncallbacks(),
    "threads": threading.active_count(),
    "root handlers": len(logging.getLogger().handlers),
    "signals": [kind(n) for n in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                   signal.SIGCHLD, signal.SIGPIPE)],
}))
"""


def test_a_call_starts_with_what_an_exec_d_one_has(tmp_path: Path) -> None:
    """Nothing the warm interpreter preloaded reaches a call: the same exit handlers, threads,
    logging handlers and signal dispositions as a fresh interpreter. Both without coverage,
    which gives a fork one more exit handler (to save the fork's own data)."""
    script = tmp_path / "state.py"
    script.write_text(STATE)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **UNMEASURED}
    argv = [sys.executable, str(script)]
    server = ForkServer(env)
    try:
        assert server.can_run(argv, env, tmp_path)
        forked = server.run(argv, env, tmp_path, 30)
    finally:
        server.close()
    execd = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert forked.stdout == execd.stdout, (forked.stdout, execd.stdout)
