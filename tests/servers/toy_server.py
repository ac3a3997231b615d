"""A server built on the factory for tests; TOY_MODE picks how it misbehaves.

Run as `python toy_server.py <command>`, the way an author's script is run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_lifecycle import MCPServerCLIFactory, notify_ready
from mcp_lifecycle.errors import ConfigurationError
from mcp_lifecycle.server.runtime import current_runtime

if TYPE_CHECKING:  # for an annotation only: pydantic would double every CLI call's cost
    from mcp_lifecycle import MCPServerSettings

MODE = os.environ.get("TOY_MODE", "ok")
NAME = os.environ.get("TOY_NAME", "toy")
MARKS = Path(os.environ.get("TOY_MARKS", "."))


def _spawn_child(ignore_term: bool) -> None:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "time.sleep(600)\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    (MARKS / "child.pid").write_text(str(child.pid))


def run() -> None:
    (MARKS / "settings.json").write_text(current_runtime().settings.model_dump_json())
    if MODE == "chatty":
        for index in range(int(os.environ.get("TOY_LINES", "200"))):
            logging.getLogger("toy").warning("line %05d %s", index, "x" * 60)
            print(f"print {index:05d}", flush=True)
    if MODE == "crash":
        raise RuntimeError("boom: the database is unreachable")
    if MODE == "exit_early":
        return
    if MODE == "hard_exit":
        os._exit(3)  # dies without any cleanup, before it is ready
    if MODE == "config_error":
        raise ConfigurationError("the toy needs a database URL", hint="set TOY_DATABASE_URL")
    if MODE == "fork_child":
        child = os.fork()
        if child == 0:  # a worker forked without exec, like multiprocessing's default
            time.sleep(600)
            os._exit(0)
        (MARKS / "child.pid").write_text(str(child))
    if MODE == "exit_call":
        sys.exit(4)
    if MODE == "never_ready":
        threading.Event().wait()
    if MODE == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if MODE in ("child", "child_ignores_term"):
        _spawn_child(ignore_term=MODE == "child_ignores_term")
    if MODE == "tree":
        # A wrapper (sh) whose grandchild ignores SIGTERM and holds the server's port.
        port = current_runtime().settings.port
        grandchild = (
            "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
        )
        subprocess.Popen(["sh", "-c", f'{sys.executable} -c "{grandchild}" & wait'])
        time.sleep(0.5)
    if MODE == "hang_on_stop":
        current_runtime().set_graceful_stop(lambda force: None)
    if MODE == "exit_codes":
        # A tool that waits for its own subprocesses: it must get their real exit codes.
        def run_tools() -> None:
            calls = int(os.environ.get("TOY_CALLS", "40"))
            codes = [
                subprocess.run(["sh", "-c", "sleep 0.02; exit 3"], check=False).returncode
                for _ in range(calls)
            ]
            (MARKS / "exit_codes.txt").write_text(" ".join(map(str, codes)))

        threading.Thread(target=run_tools, daemon=True).start()
    if MODE == "slow_ready":
        time.sleep(float(os.environ.get("TOY_READY_DELAY", "0.5")))
    notify_ready()
    notify_ready()  # a second call is harmless
    (MARKS / "runs.txt").open("a").write(f"{os.getpid()}\n")
    if MODE == "exit_after_ready":
        time.sleep(float(os.environ.get("TOY_EXIT_AFTER", "0.3")))
        sys.exit(int(os.environ.get("TOY_EXIT_CODE", "1")))
    if MODE == "grow":
        ballast = bytearray(int(os.environ.get("TOY_GROW_MB", "64")) * 1024 * 1024)
        ballast[::4096] = b"x" * len(ballast[::4096])  # touched: resident, not just reserved
    threading.Event().wait()


def on_reload(settings: MCPServerSettings) -> None:
    if os.environ.get("TOY_RELOAD_FAIL"):
        raise RuntimeError("reload hook exploded")
    with open(MARKS / "reloads.txt", "a") as handle:
        handle.write(f"{settings.log_level}\n")


def on_stop_file(pid: int) -> None:
    (MARKS / "stop_handler.txt").write_text(str(pid))
    os.kill(pid, signal.SIGTERM)


factory = MCPServerCLIFactory(
    NAME,
    start_handler=run,
    stop_handler=on_stop_file if os.environ.get("TOY_STOP_HANDLER") else None,
    reload_handler=on_reload,
    env_prefix=os.environ.get("TOY_ENV_PREFIX"),
    config_file=os.environ.get("TOY_CONFIG_FILE"),
)


@factory.probe("always-ok")
def _ok() -> bool:
    return True


if os.environ.get("TOY_FAILING_PROBE"):
    factory.add_probe("disk", lambda: "disk is full")

# By import string, as the README advises: Typer, which the command's option needs, is then
# loaded only when Typer runs the command line, never for a plain `status`.
factory.add_command(
    f"{__package__ + '.' if __package__ else ''}toy_commands:show_port", "show-port"
)
app = factory.create_app()


if __name__ == "__main__":
    app()
