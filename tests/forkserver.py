"""A warm interpreter that runs a test's CLI calls as forks of itself.

Every CLI call of the suite is a real process, with its own PID, argv, environment, working
directory, pipes and exit status. Started with `exec`, each would pay Python's start-up and the
import of Typer and pydantic again (and, under coverage, coverage's own import, ~0.1 s): most
of the suite's CPU, on two cores. So each test worker keeps one interpreter that has imported
them, and a call is a fork of it that runs the script as `python script args` would: in
`__main__`, with the script's folder first on `sys.path`, the call's environment and folder, and
the interpreter's own standard streams on the call's pipes. It preloads the libraries, and of
our package only the modules that set nothing up for a call at import (no fork hook, nothing
read from the environment but the start-up variables): the rest, the server's runtime and the
health snapshot among them, each call imports as exec'd would (their import-time state, fork
hooks and coverage are the call's own).

The server reaps its calls and sends each caller the exit status; it kills a call whose caller
gives up (a timeout, Ctrl-C) or goes away, before reaping it: no signal can reach a reused PID,
and no call outlives its `run`.

What a fork cannot give is exec'd instead: another interpreter or other interpreter variables
(PYTHON*, COVERAGE_*, the locale, the portable switch, all read at start-up), a command that is
not a Python script, a server run in the foreground (a server is always its own interpreter),
and a test marked `repetitive` (its processes run without coverage). What stays different: the
forks of one worker share its hash seed and the libraries it preloaded. In the portable pass
of `scripts/test.sh` the warm interpreter starts portable too (tests/portable), so its forks are.

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
_PRELOAD = ("typer", "pydantic", "pydantic_settings", "yaml", "psutil", "platformdirs")
# And the modules of ours that every call imports and that leave it nothing of the server's:
# the settings model, the app, the files and the name claim (with what they import). None may
# register a fork hook (every call would run it; `_serve` refuses to start then), and at import
# they read nothing but the start-up variables above. The others, the server's runtime and the
# health snapshot with their fork hooks among them, each call imports for itself.
_PRELOAD_OURS = (
    "mcp_lifecycle.cli.app",
    "mcp_lifecycle.cli.factory",
    "mcp_lifecycle.cli.fast",
    "mcp_lifecycle.cli.render",
    "mcp_lifecycle.control.inspect",
    "mcp_lifecycle.files.registry",
    "mcp_lifecycle.handoff",
    "mcp_lifecycle.server.claim",
    "mcp_lifecycle.server.heartbeat",
    "mcp_lifecycle.settings.model",
    "mcp_lifecycle.transports.access",
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
        with (self.folder / "stderr").open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, __file__, str(self.socket_path)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 60
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                said = (self.folder / "stderr").read_text(errors="replace")
                self.close()
                raise RuntimeError(f"the fork server did not start: {said}")
            time.sleep(0.01)

    def can_run(self, argv: list[str], env: dict[str, str], cwd: Path) -> bool:
        if "--foreground" in argv or not cwd.is_dir():
            return False
        if argv[:1] == [sys.executable]:
            script = cwd / argv[1] if len(argv) > 1 else cwd
            if script.suffix != ".py" or not script.is_file():
                return False  # -m, -c, an interpreter option, no such file: exec says so
        elif not argv or not _is_python_script(cwd / argv[0]):
            return False
        return _start_up_variables(env) == _start_up_variables(self.env)

    def run(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """As `subprocess.run(argv, env=env, cwd=cwd, stdin=DEVNULL, capture_output=True,
        text=True, timeout=timeout)`; ForkServerGone before anything ran."""
        deadline = time.monotonic() + timeout
        script_args = argv[1:] if argv[0] == sys.executable else argv
        request = json.dumps({"argv": script_args, "env": env, "cwd": str(cwd)}).encode()
        if len(request) > _MAX_REQUEST:
            raise ForkServerGone("the call is too large to hand over")
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            try:
                conn.connect(str(self.socket_path))
            except OSError as exc:
                raise ForkServerGone(str(exc)) from None
            return _hand_over(conn, request, argv, timeout, deadline)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # coverage saves what the server itself measured
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        said = (self.folder / "stderr").read_text(errors="replace")
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()
        if said.strip():
            print(f"the fork server said: {said}", file=sys.stderr)


def _hand_over(
    conn: socket.socket, request: bytes, argv: list[str], timeout: float, deadline: float
) -> subprocess.CompletedProcess[str]:
    """Send the call its streams and wait for it as `subprocess.run` waits for a child."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    out, err, status = b"", b"", None
    try:
        try:
            socket.send_fds(conn, [request], [null, out_w, err_w])
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)  # the call has them now: EOF comes when it is done
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        _receive_number(conn)  # its PID: it runs
        out, err, finished = _read_both(out_r, err_r, deadline)
        if finished:
            conn.settimeout(max(0.001, deadline - time.monotonic()))
            status = _receive_number(conn)
    except TimeoutError:
        pass
    except BaseException:
        _stop_call(conn)  # as subprocess.run kills its child on any exception
        raise
    finally:
        os.close(out_r)
        os.close(err_r)
    if status is None:
        _stop_call(conn)
        raise subprocess.TimeoutExpired(argv, timeout, out or None, err or None)
    return subprocess.CompletedProcess(
        argv, os.waitstatus_to_exitcode(status), _decode(out), _decode(err)
    )


def run(
    forks: ForkServer | None, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """A CLI call: a fork of the warm interpreter where it can be one, else exec'd."""
    if forks is not None and forks.can_run(argv, env, cwd):
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


def _is_python_script(path: Path) -> bool:
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
        raise RuntimeError("the fork server closed the call without a word")
    return int(data)


def _stop_call(conn: socket.socket) -> None:
    """Have the server kill the call, and wait until it has reaped it (it then closes)."""
    with contextlib.suppress(OSError):
        conn.settimeout(10)
        conn.send(b"kill")
        while conn.recv(64):
            pass


# -- the server ----------------------------------------------------------------------------


class _Server:
    """One loop: accept a call and fork it; a caller's word or its going away kills its call;
    every exited call is reaped and its status sent to its caller."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path + ".tmp")
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select through wake_w
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.calls: dict[int, socket.socket] = {}
        os.rename(path + ".tmp", path)  # seen only once it accepts

    def serve(self) -> None:
        parent = os.getppid()
        while os.getppid() == parent:  # a test worker that died leaves no server behind
            for key, _ in self.selector.select(timeout=1):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 512)
                else:  # the caller gave up or is gone: still unreaped, the PID is the call's
                    self.selector.unregister(key.fileobj)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(key.data, signal.SIGKILL)
            self._reap()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
        # The call's SIGTERM is a fresh interpreter's (its coverage's handler chains to it).
        kept = signal.signal(signal.SIGTERM, signal.SIG_DFL)
        pid = os.fork()
        if pid == 0:
            self._leave(conn)
            _become(json.loads(data), fds)
        signal.signal(signal.SIGTERM, kept)
        for fd in fds:
            os.close(fd)
        conn.send(str(pid).encode())
        self.calls[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def _leave(self, conn: socket.socket) -> None:
        """In a call: nothing of the server's stays open or set."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for other in (self.listener, conn, *self.calls.values()):
            other.close()
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)

    def _reap(self) -> None:
        while self.calls:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.calls.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(KeyError):
                self.selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.send(str(status).encode())
            conn.close()


def _serve(path: str) -> None:
    import gc
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    # Any fork hook registered while our modules load (by them, or by a library they are the
    # first to import) would run in every call: none is today, and none may be.
    hooked: list[str] = []
    register = os.register_at_fork

    def watched(**hooks: Any) -> None:
        hooked.extend(getattr(hook, "__qualname__", repr(hook)) for hook in hooks.values())
        register(**hooks)

    os.register_at_fork = watched
    try:
        for name in _PRELOAD_OURS:
            importlib.import_module(name)
    finally:
        os.register_at_fork = register
    if hooked:
        raise SystemExit(
            f"a preloaded module registers a fork hook, which every call would run: {hooked}"
        )
    gc.freeze()  # the forks' collections need not visit (and so copy) what was preloaded
    _Server(path).serve()


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
