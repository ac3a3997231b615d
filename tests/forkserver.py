"""A warm interpreter that runs a test's CLI calls as forks of itself.

Every CLI call of the suite is a real process, with its own PID, argv, environment, working
directory, pipes and exit status. Started with `exec`, each would pay Python's start-up and the
import of Typer and pydantic again (and, under coverage, coverage's own import, ~0.1 s): most
of the suite's CPU, on two cores. So each test worker keeps one interpreter that has imported
them, and a call is a fork of it that runs the script as `python script args` would: in
`__main__`, with the script's folder first on `sys.path`, the call's environment and folder, and
the interpreter's own standard streams on the call's pipes.

Two forks: the first waits for the second, reports its PID and exit status, and kills it if the
caller goes away or gives up (a timeout, Ctrl-C): the caller never signals a PID that may have
been reaped, and no call outlives its `run`.

What a fork cannot give is exec'd instead: another interpreter or other interpreter variables
(PYTHON*, COVERAGE_*, the locale, the portable switch, all read at start-up), a command that is
not a Python script, a server run in the foreground (a server is always its own interpreter),
and a test marked `repetitive` (its processes run without coverage). What stays different: the
forks of one worker share its hash seed and the modules it preloaded; the portable pass of
`scripts/test.sh` execs every call.

Run as a script, this is the server: `python forkserver.py SOCKET`.
"""

from __future__ import annotations

import contextlib
import json
import locale
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# What an interpreter reads when it starts, or our package when it is imported: a call that
# sets these otherwise than the server was started with is exec'd.
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
_MAX_REQUEST = 64 * 1024  # beyond this, exec (and its own limits) decide


class ForkServerGone(Exception):
    """The warm interpreter cannot take the call (before it was handed over: exec it)."""


def _start_up_variables(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_START_UP)}


class ForkServer:
    """The test side: `run` a CLI call in a fork of the warm interpreter."""

    def __init__(self, env: dict[str, str]) -> None:
        # A short path: a Unix socket's is at most 107 bytes, and pytest's folders can be long.
        self.folder = Path(tempfile.mkdtemp(prefix="mcp-forks-"))
        self.socket_path = self.folder / "socket"
        self.env = dict(env)
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(self.socket_path)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "stderr").open("wb"),
        )
        deadline = time.monotonic() + 60
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(
                    f"the fork server did not start: {(self.folder / 'stderr').read_text()}"
                )
            time.sleep(0.01)

    def can_run(self, argv: list[str], env: dict[str, str]) -> bool:
        if "--foreground" in argv:
            return False
        if argv[:1] == [sys.executable]:
            script = argv[1] if len(argv) > 1 else ""
            if not script.endswith(".py") or not os.path.isfile(script):
                return False  # -m, -c, an interpreter option, no such file: exec says so
        elif not argv or not _is_python_script(argv[0]):
            return False
        return _start_up_variables(env) == _start_up_variables(self.env)

    def run(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """As `subprocess.run(argv, env=env, cwd=cwd, stdin=DEVNULL, capture_output=True,
        text=True, timeout=timeout)`."""
        deadline = time.monotonic() + timeout
        script_args = argv[1:] if argv[0] == sys.executable else argv
        request = json.dumps({"argv": script_args, "env": env, "cwd": str(cwd)}).encode()
        if len(request) > _MAX_REQUEST:
            raise ForkServerGone("the call is too large to hand over")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            try:
                try:
                    conn.connect(str(self.socket_path))
                except OSError as exc:
                    raise ForkServerGone(str(exc)) from None
                socket.send_fds(conn, [request], [null, out_w, err_w])
            finally:
                for fd in (null, out_w, err_w):
                    os.close(fd)  # the fork has them now: EOF comes when it is done
            try:
                _receive_number(conn)  # its PID: the call runs
                out, err, finished = _read_both(out_r, err_r, deadline)
                if finished:
                    conn.settimeout(max(0.001, deadline - time.monotonic()))
                    status = _receive_number(conn)
            except TimeoutError:
                finished = False
            except BaseException:
                _stop_call(conn)  # as subprocess.run kills its child on any exception
                raise
            finally:
                os.close(out_r)
                os.close(err_r)
            if not finished:
                _stop_call(conn)
                raise subprocess.TimeoutExpired(argv, timeout, _decode(out), _decode(err))
        return subprocess.CompletedProcess(
            argv, os.waitstatus_to_exitcode(status), _decode(out), _decode(err)
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # coverage saves what the server itself measured
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()


def run(
    forks: ForkServer | None, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """A CLI call: a fork of the warm interpreter where it can be one, else exec'd."""
    if forks is not None and forks.can_run(argv, env):
        with contextlib.suppress(ForkServerGone):
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
    """A console script of this interpreter (its first line names it) that exec could run."""
    try:
        with open(path, "rb") as file:
            first = file.readline(4096)
    except OSError:
        return False
    return first.strip() == f"#!{sys.executable}".encode() and os.access(path, os.X_OK)


def _read_both(out_fd: int, err_fd: int, deadline: float) -> tuple[bytes, bytes, bool]:
    """Both pipes to their end (or what came by the deadline), as `communicate` reads them;
    whether they ended."""
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(deadline - time.monotonic()):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
        finished = not selector.get_map()
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), finished


def _decode(data: bytes) -> str:
    """As `text=True` reads a pipe: the locale's encoding, strict, universal newlines."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _receive_number(conn: socket.socket) -> int:
    data = conn.recv(64)
    if not data:
        raise RuntimeError("the fork server's first fork ended without a word")
    return int(data)


def _stop_call(conn: socket.socket) -> None:
    """Have the first fork kill the call and wait until it is gone."""
    with contextlib.suppress(OSError, ValueError):
        conn.settimeout(10)
        conn.send(b"kill")
        conn.recv(64)


# -- the server ----------------------------------------------------------------------------


def _serve(path: str) -> None:
    import gc
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path + ".tmp")
    listener.listen(64)
    gc.freeze()  # the forks' collections need not visit (and so copy) what was preloaded
    os.rename(path + ".tmp", path)  # seen only once it accepts
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the first forks are reaped by the kernel
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
            _first_fork(conn)  # returns only in the second fork, which runs the call
            return
        conn.close()


def _first_fork(conn: socket.socket) -> None:
    """Start the call in a second fork; report its PID and exit status; kill it if asked to
    or if the caller is gone. Never returns here: only the second fork goes on."""
    first = os.getpid()
    try:
        data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
        request = json.loads(data)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below
        # The call's SIGTERM is a fresh interpreter's (coverage's handler chains to it).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (wake_r, wake_w):
                os.close(fd)
            conn.close()
            _become(request, fds)
            return
        for fd in fds:
            os.close(fd)
        conn.send(str(pid).encode())
        conn.send(str(_wait_or_kill(pid, conn, wake_r)).encode())
    finally:
        if os.getpid() == first:
            os._exit(0)  # nothing may unwind into the server's loop


def _wait_or_kill(pid: int, conn: socket.socket, wake: int) -> int:
    """The call's wait status; a word from the caller, or its going away, kills the call
    first (still our unreaped child: its PID is its own)."""
    with selectors.DefaultSelector() as selector:
        selector.register(conn, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while True:
            ready = {key.fileobj for key, _ in selector.select()}
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if conn in ready:
                os.kill(pid, signal.SIGKILL)
                return os.waitpid(pid, 0)[1]
            with contextlib.suppress(BlockingIOError):
                os.read(wake, 512)


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Become `python script args` with the call's environment, folder and streams."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)  # under the streams the interpreter made at start-up
        os.close(fd)
    argv: list[str] = request["argv"]
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.realpath(argv[0]))
    import runpy

    runpy.run_path(argv[0], run_name="__main__")
    # As the interpreter ends a script: atexit, flushed streams, coverage saved.
    sys.exit(0)


if __name__ == "__main__":
    _serve(sys.argv[1])
