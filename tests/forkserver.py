"""A warm interpreter that runs a test's CLI calls as forks of itself.

Every CLI call of the suite is a real process, with its own PID, argv, environment, working
directory, pipes and exit status. Started with `exec`, each would pay Python's start-up and the
import of Typer and pydantic again (and, under coverage, coverage's own import, ~0.1 s): most
of the suite's CPU, on two cores. So each test worker keeps one interpreter that has imported
them, and a call is a fork of it that runs the script as `python script args` would: in
`__main__`, with the script's folder first on `sys.path`, the call's environment, folder and
standard streams. Two forks: the first waits for the second and reports its exit status, so the
server needs no bookkeeping. The servers a `start` spawns are exec'd as always.

What a fork cannot give is used `exec` instead: another interpreter or interpreter variables
(PYTHON*, COVERAGE_*, the locale, the portable switch, all read at start-up), a command that is
not a Python script, and a test that says `bare` (its processes run without coverage).

Run as a script, this is the server: `python forkserver.py SOCKET`.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# What an interpreter reads when it starts, or what our package reads when imported: a call
# that sets these otherwise than the server was started with is exec'd.
_START_UP = ("PYTHON", "COVERAGE_", "LC_", "LANG", "MCP_LIFECYCLE_PORTABLE")
_PRELOAD = (
    "typer",
    "pydantic",
    "pydantic_settings",
    "yaml",
    "psutil",
    "mcp_lifecycle.cli.factory",
    "mcp_lifecycle.cli.app",
    "mcp_lifecycle.cli.lifecycle",
    "mcp_lifecycle.cli.root",
    "mcp_lifecycle.settings.model",
    "mcp_lifecycle.control.start",
    "mcp_lifecycle.control.stop",
    "mcp_lifecycle.control.status",
    "mcp_lifecycle.control.health",
)


def _start_up_variables(env: dict[str, str]) -> dict[str, str]:
    # PYTHONUNBUFFERED is the one a fork applies itself (its new standard streams).
    return {k: v for k, v in env.items() if k.startswith(_START_UP) and k != "PYTHONUNBUFFERED"}


class ForkServer:
    """The test side: `run` a CLI call in a fork of the warm interpreter."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.socket_path = folder / "forkserver.sock"
        self.env = dict(env)
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(self.socket_path)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the fork server did not start")
            time.sleep(0.01)

    def can_run(self, argv: list[str], env: dict[str, str]) -> bool:
        if argv[:1] == [sys.executable]:
            if not argv[1:2] or not argv[1].endswith(".py"):
                return False  # -m, -c, an option of the interpreter: exec
        elif not argv or not _is_python_script(argv[0]):
            return False
        return _start_up_variables(env) == _start_up_variables(self.env)

    def run(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Like `subprocess.run(argv, env=env, cwd=cwd, stdin=DEVNULL, capture_output=True,
        text=True, timeout=timeout)`."""
        script_args = argv[1:] if argv[0] == sys.executable else argv
        request = json.dumps({"argv": script_args, "env": env, "cwd": str(cwd)}).encode()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            try:
                conn.connect(str(self.socket_path))
                socket.send_fds(conn, [request], [null, out_w, err_w])
            finally:
                for fd in (null, out_w, err_w):
                    os.close(fd)  # the fork has them now: EOF comes when it is done
            try:
                pid = int(conn.recv(64))
                try:
                    out, err = _read_both(out_r, err_r, time.monotonic() + timeout)
                except subprocess.TimeoutExpired:
                    os.kill(pid, signal.SIGKILL)  # the fork that runs this call: ours
                    raise subprocess.TimeoutExpired(argv, timeout) from None
            finally:
                os.close(out_r)
                os.close(err_r)
            conn.settimeout(timeout)
            status = int(conn.recv(64))
        return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(status), out, err)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # coverage saves what the server itself measured
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run(
    forks: ForkServer | None, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """A CLI call: a fork of the warm interpreter where it can be one, else `exec`'d."""
    if forks is not None and forks.can_run(argv, env):
        return forks.run(argv, env, cwd, timeout)
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _is_python_script(path: str) -> bool:
    """A console script of this interpreter (its first line names it)."""
    try:
        with open(path, "rb") as file:
            first = file.readline(4096)
    except OSError:
        return False
    return first.strip() == f"#!{sys.executable}".encode()


def _read_both(out_fd: int, err_fd: int, deadline: float) -> tuple[str, str]:
    """Both pipes to their end, as `communicate` reads them."""
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired([], 0)
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
    out, err = (b"".join(chunks[fd]).decode(errors="replace") for fd in (out_fd, err_fd))
    return out, err


# -- the server ----------------------------------------------------------------------------


def _serve(path: str) -> None:
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path + ".tmp")
    listener.listen(64)
    import gc

    gc.freeze()  # the forks' collections need not visit (and so copy) what was preloaded
    os.rename(path + ".tmp", path)  # seen only once it accepts
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the waiting forks reap themselves
    parent = os.getppid()
    listener.settimeout(1)
    while os.getppid() == parent:  # a test worker that died leaves no server behind
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        if os.fork() == 0:
            listener.close()
            _wait_for_call(conn)  # returns only in the fork that runs the CLI
            return
        conn.close()


def _wait_for_call(conn: socket.socket) -> None:
    """In the first fork: start the call in a second one, report its PID and exit status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    request = json.loads(data)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _become(request, fds)
        return
    for fd in fds:
        os.close(fd)
    conn.send(str(pid).encode())
    _, status = os.waitpid(pid, 0)
    conn.send(str(status).encode())
    os._exit(0)


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Become `python script args` with the call's environment, folder and streams."""
    import io

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    argv: list[str] = request["argv"]
    env: dict[str, str] = request["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(str(request["cwd"]))
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    encoding = sys.stdout.encoding
    streams = {
        "stdin": io.TextIOWrapper(
            io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding
        ),
        "stdout": io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
            encoding=encoding,
            write_through=unbuffered,
        ),
        "stderr": io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
            encoding=encoding,
            errors="backslashreplace",
            line_buffering=True,
            write_through=unbuffered,
        ),
    }
    for name, stream in streams.items():
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.realpath(argv[0]))
    import runpy

    runpy.run_path(argv[0], run_name="__main__")
    # As the interpreter ends a script: atexit, flushed streams, coverage saved.
    sys.exit(0)


if __name__ == "__main__":
    _serve(sys.argv[1])
