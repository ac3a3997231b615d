"""Servers we did not write, run by `mcp-lifecycle`: third-party-style servers on the official
SDK only (one over HTTP, one over stdio), a fleet file and a client's `.mcp.json`, real MCP
clients through the URLs `client-config` prints, and nothing left behind."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import anyio
import psutil
import pytest

from tests.conftest import (
    CLI_POLL,
    TOKEN_VAR,
    UNMEASURED,
    Result,
    describe,
    free_port,
    kill_processes_with_token,
    live_processes_with_token,
    run_cli,
    wait_for,
)
from tests.forkserver import ForkServer

TOOL = shutil.which("mcp-lifecycle") or str(Path(sys.executable).parent / "mcp-lifecycle")
FOREIGN = Path(__file__).resolve().parents[1] / "foreign"
HTTP_SERVER = FOREIGN / "http_server.py"
STDIO_SERVER = FOREIGN / "stdio_server.py"
# The foreign servers run none of our code.
_UNMEASURED_YAML = ", ".join(f'{key}: ""' for key in UNMEASURED)
# A sitecustomize that makes `import mcp` take 3 s longer, as on a heavily loaded machine.
SLOW_SDK_IMPORT = Path(__file__).parent.parent / "servers" / "slow_sdk_import"


@dataclass
class Fleet:
    folder: Path
    env: dict[str, str]
    forks: ForkServer | None = None

    def run(self, *args: str, timeout: float = 90, **env: str) -> Result:
        return run_cli(self.forks, [TOOL, *args], {**self.env, **env}, self.folder, timeout)

    def write(self, text: str, name: str = "mcp-lifecycle.yaml") -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def status(self, *args: str) -> dict[str, dict[str, Any]]:
        result = self.run(*args, "status", "--json")
        return {row["server"]: row for row in json.loads(result.out)}

    def processes(self) -> list[psutil.Process]:
        """Every live process this fleet started (they carry the test's token)."""
        return live_processes_with_token(self.env[TOKEN_VAR])


@pytest.fixture
def fleet(tmp_path: Path, test_token: str, forks: ForkServer | None) -> Iterator[Fleet]:
    folder = tmp_path / "project"
    folder.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MCP_SERVER_", "MCP_LIFECYCLE_"))
    }
    env.update(
        {
            TOKEN_VAR: test_token,
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            # Meant for one server of ours: must not land on every member of a fleet.
            "MCP_SERVER_CACHE_ROOT": str(tmp_path / "one-server"),
            "MCP_SERVER_STOP_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    yield Fleet(folder, env, forks)
    leaked = kill_processes_with_token(test_token)
    assert not leaked, f"the test left processes running: {leaked}"


def _yaml(http_port: int, *, restart: str = "never", crash: bool = False) -> str:
    crash_arg = ', "--crash"' if crash else ""
    return f"""\
servers:
  adder:
    command: [{sys.executable}, {HTTP_SERVER}, "{http_port}"{crash_arg}]
    url: http://127.0.0.1:{http_port}/mcp
    restart: {restart}
    env: {{{_UNMEASURED_YAML}}}
  echo:
    command: {sys.executable} {STDIO_SERVER}
    transport: stdio
    env: {{GREETING: hello from the fleet file, {_UNMEASURED_YAML}}}
"""


async def _use(url: str, headers: dict[str, str], tool: str, arguments: dict[str, Any]) -> Any:
    from mcp_lifecycle.transports.probe import connect

    token = headers.get("Authorization", "").removeprefix("Bearer ") or None
    async with connect(url, token) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool(tool, arguments)
        return names, result.content[0].text


def _post_without_token(url: str, **headers: str) -> int:
    """The HTTP status of a tools/list POST carrying only `headers` (no token unless given)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.request(
        "POST",
        parts.path,
        body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
    )
    status = connection.getresponse().status
    connection.close()
    return status


def _call(entry: dict[str, Any], tool: str, arguments: dict[str, Any]) -> Any:
    return anyio.run(_use, entry["url"], entry.get("headers", {}), tool, arguments)


def test_a_fleet_comes_up_serves_real_clients_and_goes_down_leaving_nothing(
    fleet: Fleet,
) -> None:
    port = free_port()
    fleet.write(_yaml(port))
    up = fleet.run("up")
    try:
        assert up.code == 0, up
        assert "started adder" in up.out
        assert "started echo" in up.out
        rows = fleet.status()
        assert {name: row["state"] for name, row in rows.items()} == {
            "adder": "ready",
            "echo": "ready",
        }
        assert rows["adder"]["url"] == f"http://127.0.0.1:{port}/mcp"
        assert all(row["rss_bytes"] > 0 for row in rows.values())
        config = json.loads(fleet.run("client-config", "--json").out)["mcpServers"]
        assert set(config) == {"adder", "echo"}
        assert "headers" not in config["adder"]  # its door is its own
        assert config["echo"]["headers"]["Authorization"].startswith("Bearer ")
        assert _call(config["adder"], "add", {"a": 2, "b": 3}) == (["add"], "5")
        names, greeting = _call(config["echo"], "greeting", {})
        assert sorted(names) == ["echo", "greeting"]
        assert greeting == "hello from the fleet file"  # the file's env reached the server
        # The bridge is behind our token: without it, nothing.
        assert _post_without_token(config["echo"]["url"]) == 401
        bearer = config["echo"]["headers"]["Authorization"]
        # A web page through DNS rebinding: a foreign Host or Origin, even with the token.
        assert _post_without_token(config["echo"]["url"], Host="evil.example") == 421
        assert (
            _post_without_token(
                config["echo"]["url"], Authorization=bearer, Origin="http://evil.example"
            )
            == 403
        )
        # What we cannot guard is said, not hidden.
        assert rows["adder"]["token_required"] is False
        assert "no token of ours guards it" in rows["adder"]["access_note"]
        assert rows["echo"]["token_required"] is True
        assert "adder serves HTTP itself" in fleet.run("status").out
        probed = fleet.run("health", "echo", "--probe")
        assert probed.code == 0, probed
        assert "MCP handshake" in probed.out
        # The probe's timeout is the server's: importing the SDK (~0.6 s, far more on a loaded
        # machine; 3 s here) happens before its clock starts.
        quick = fleet.run(
            "health", "echo", "--probe",
            MCP_SERVER_PROBE_TIMEOUT_SECONDS="2", PYTHONPATH=str(SLOW_SDK_IMPORT),
        )  # fmt: skip
        assert quick.code == 0, quick
        started = fleet.processes()
        assert len(started) >= 4  # two servers of ours, and the two they run
        # Each member has its own cache root, whatever MCP_SERVER_CACHE_ROOT says.
        assert rows["adder"]["cache_root"] != rows["echo"]["cache_root"]
    finally:
        down = fleet.run("down")
    assert down.code == 0, down
    assert "stopped adder" in down.out
    assert "stopped echo" in down.out
    assert wait_for(lambda: not fleet.processes(), 10), describe(fleet.processes())
    assert fleet.run("status").code == 2


def test_a_claude_code_mcp_json_is_run_as_it_is_on_a_port_kept_for_its_name(
    fleet: Fleet,
) -> None:
    config = {
        "mcpServers": {
            "echo": {
                "command": sys.executable,
                "args": [str(STDIO_SERVER)],
                "env": {"GREETING": "hello from .mcp.json", **UNMEASURED},
            }
        }
    }
    fleet.write(json.dumps(config, indent=2), ".mcp.json")
    up = fleet.run("--file", ".mcp.json", "up")
    try:
        assert up.code == 0, up
        first = json.loads(fleet.run("client-config", "--json", "--file", ".mcp.json").out)
        entry = first["mcpServers"]["echo"]
        assert entry["type"] == "http"
        assert _call(entry, "greeting", {})[1] == "hello from .mcp.json"
        assert fleet.run("--file", ".mcp.json", "restart", "echo").code == 0
        again = json.loads(fleet.run("--file", ".mcp.json", "client-config", "--json").out)
        assert again["mcpServers"]["echo"]["url"] == entry["url"]  # clients keep working
        assert _call(again["mcpServers"]["echo"], "echo", {"text": "still here"})[1] == (
            "still here"
        )
        # `> .mcp.json` would empty the file the servers come from: --output refuses it...
        before = (fleet.folder / ".mcp.json").read_text()
        refused = fleet.run("--file", ".mcp.json", "client-config", "--output", ".mcp.json")
        assert refused.code == 5, refused
        assert (fleet.folder / ".mcp.json").read_text() == before
        # ...and writes any other file whole, for its owner only (it holds the token).
        wrote = fleet.run("--file", ".mcp.json", "client-config", "-o", "shared.json")
        assert wrote.code == 0, wrote
        shared = fleet.folder / "shared.json"
        assert json.loads(shared.read_text()) == again
        assert shared.stat().st_mode & 0o777 == 0o600
    finally:
        assert fleet.run("--file", ".mcp.json", "down").code == 0
    assert wait_for(lambda: not fleet.processes(), 10)


def test_a_crashing_server_is_reported_with_its_log_tail_and_hides_no_other(
    fleet: Fleet,
) -> None:
    fleet.write(_yaml(free_port(), crash=True))
    up = fleet.run("up", "--timeout", "20")
    try:
        assert up.code == 1, up
        assert "FAILED adder" in up.err
        assert "cannot open its database" in up.err  # its own words, from its log
        assert "started echo" in up.out  # the other one came up all the same
        rows = fleet.status()
        assert rows["adder"]["state"] == "not running"
        assert rows["echo"]["state"] == "ready"
    finally:
        fleet.run("down")
    assert wait_for(lambda: not fleet.processes(), 10)


def test_a_server_that_dies_comes_back_under_its_restart_policy(fleet: Fleet) -> None:
    port = free_port()
    fleet.write(_yaml(port, restart="on-failure"))
    assert fleet.run("up", "adder").code == 0
    try:
        row = fleet.status()["adder"]
        assert row["restarts"] == 0
        assert row["supervisor_pid"] is not None
        server = psutil.Process(row["pid"])
        (child,) = server.children()
        os.kill(child.pid, signal.SIGKILL)  # the server we did not write dies
        assert wait_for(lambda: fleet.status()["adder"]["restarts"] == 1, 20, interval=CLI_POLL)
        assert wait_for(lambda: fleet.status()["adder"]["state"] == "ready", 20, interval=CLI_POLL)
        assert fleet.run("health", "adder", "--probe").code == 0
    finally:
        assert fleet.run("down").code == 0
    assert wait_for(lambda: not fleet.processes(), 10)


def test_a_url_only_entry_is_probed_never_started(fleet: Fleet) -> None:
    port = free_port()
    fleet.write(
        _yaml(port)
        + f"""\
  elsewhere:
    url: http://127.0.0.1:{port}/mcp
"""
    )
    up = fleet.run("up", "adder", "elsewhere")
    try:
        assert up.code == 0, up
        assert "elsewhere: runs elsewhere" in up.out
        probed = fleet.run("health", "elsewhere", "--probe")
        assert probed.code == 0, probed
        assert fleet.status()["elsewhere"]["state"] == "remote"
    finally:
        fleet.run("down")
    assert wait_for(lambda: not fleet.processes(), 10)
    probed = fleet.run("health", "elsewhere")
    assert probed.code == 4, probed  # nobody answers there any more


def _prefixes(lines: list[str]) -> set[str]:
    return {line.split("|", 1)[0].strip() for line in lines if "|" in line}


def test_logs_of_the_whole_fleet_carry_each_server_name(fleet: Fleet) -> None:
    fleet.write(_yaml(free_port()))
    assert fleet.run("up").code == 0
    try:
        logs = fleet.run("logs", "-n", "5")
        assert logs.code == 0, logs
        prefixes = {line.split("|", 1)[0].strip() for line in logs.out.splitlines()}
        assert prefixes == {"adder", "echo"}
        one = fleet.run("logs", "echo", "-n", "3")
        assert one.code == 0
        assert "|" not in one.out.splitlines()[0][:8]
        errors = fleet.folder / "follow.err"
        lines: list[str] = []

        def read(stream: IO[str]) -> None:
            for line in stream:
                lines.append(line)

        with errors.open("w") as err_file, subprocess.Popen(
            [TOOL, "logs", "--follow", "-n", "1"], env=fleet.env, cwd=fleet.folder,
            stdout=subprocess.PIPE, stderr=err_file, text=True,
        ) as following:  # fmt: skip
            assert following.stdout is not None
            reader = threading.Thread(target=read, args=(following.stdout,))
            reader.start()
            try:
                # The last line of each log: from here on it follows both.
                assert wait_for(lambda: len(lines) >= 2, 20)
                assert {line[:5] for line in lines[:2]} == {"adder", "echo "}
                assert fleet.run("health", "echo", "--probe").code == 0  # a request: a line
                assert fleet.run("health", "adder", "--probe").code == 0
                # Each line as it came, from both (a server writes its line after its answer:
                # a Ctrl-C at once could come first).
                assert wait_for(lambda: _prefixes(lines[2:]) == {"adder", "echo"}, 20), lines
                following.send_signal(signal.SIGINT)
                following.wait(timeout=20)
            finally:
                if following.poll() is None:
                    following.kill()
                    following.wait()
                reader.join()
        err = errors.read_text()
        assert following.returncode == 0, err
        assert "Traceback" not in err
    finally:
        fleet.run("down")
    assert wait_for(lambda: not fleet.processes(), 10)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("servers:\n  adder:\n    command: [x]\n    url: http://127.0.0.1:1/mcp\n    colour: red\n",
         "line 5: server 'adder': unknown key 'colour'"),
        ("servers:\n  adder:\n    env: {A: b}\n", "line 2: server 'adder': missing command"),
        ("servers:\n  a:\n    command: [x]\n    transport: stdio\n    port: 9001\n"
         "  b:\n    command: [y]\n    transport: stdio\n    port: 9001\n",
         "line 6: server 'b': port 9001 is also"),
        ("servers:\n  ../escape:\n    command: [x]\n    transport: stdio\n",
         "line 2: server '../escape': its name is not a safe file name"),
    ],
)  # fmt: skip
def test_a_bad_fleet_file_starts_nothing(fleet: Fleet, text: str, problem: str) -> None:
    path = fleet.write(text)
    result = fleet.run("up")
    assert result.code == 5, result
    assert f"{path.name} {problem}" in result.err
    assert fleet.processes() == []


# -- what a hostile review found ------------------------------------------------------------------


def _ours(fleet: Fleet, *strangers: subprocess.Popen[bytes]) -> list[psutil.Process]:
    skip = {stranger.pid for stranger in strangers}
    return [proc for proc in fleet.processes() if proc.pid not in skip]


def test_an_mcp_server_already_on_the_port_is_not_taken_for_ours(fleet: Fleet, spawn: Any) -> None:
    """Someone else answers MCP at the URL first: a handshake there proves nothing about the
    command we run, so `up` fails and names the holder instead of saying "started"."""
    port = free_port()
    stranger = spawn(
        [sys.executable, str(HTTP_SERVER), str(port)], stderr=subprocess.DEVNULL, env=UNMEASURED
    )
    assert wait_for(lambda: _answers(port), 20)
    fleet.write(_yaml(port))
    up = fleet.run("up", "adder")
    assert up.code == 1, up
    assert f"port {port}" in up.err
    assert f"PID {stranger.pid}" in up.err
    assert "started adder" not in up.out
    assert wait_for(lambda: not _ours(fleet, stranger), 10)


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_what_a_wrapper_left_behind_goes_with_it(fleet: Fleet) -> None:
    """A wrapper script that starts the server in the background and then exits: the server
    we counted as ready must not run on, unreachable by `down`."""
    port = free_port()
    # The wrapper exits only once `up` has counted the server ready: a fixed sleep raced a
    # start-up slowed by a loaded machine.
    gone = fleet.folder / "wrapper-may-go"
    script = (
        f"{sys.executable} {HTTP_SERVER} {port} & while [ ! -e {gone} ]; do sleep 0.1; done; exit 1"
    )
    fleet.write(
        f"servers:\n  wrapped:\n    command: [/bin/sh, -c, {json.dumps(script)}]\n"
        f"    url: http://127.0.0.1:{port}/mcp\n    env: {{{_UNMEASURED_YAML}}}\n"
    )
    assert fleet.run("up").code == 0
    gone.touch()
    assert wait_for(
        lambda: fleet.status()["wrapped"]["state"] == "not running", 20, interval=CLI_POLL
    )
    assert wait_for(lambda: not fleet.processes(), 10), fleet.processes()


def test_a_bridged_servers_helpers_go_down_with_it(fleet: Fleet) -> None:
    """A stdio server that started a helper of its own (in the session the SDK gave it)."""
    script = f"sleep 300 & exec {sys.executable} {STDIO_SERVER}"
    fleet.write(
        f"servers:\n  helped:\n    command: [/bin/sh, -c, {json.dumps(script)}]\n"
        f"    transport: stdio\n    env: {{{_UNMEASURED_YAML}}}\n"
    )
    assert fleet.run("up").code == 0
    assert any("sleep" in " ".join(proc.cmdline()) for proc in fleet.processes())
    assert fleet.run("down").code == 0
    assert wait_for(lambda: not fleet.processes(), 10), fleet.processes()


def test_a_bridge_killed_outright_takes_its_stdio_server_along(fleet: Fleet) -> None:
    fleet.write(_yaml(free_port()))
    assert fleet.run("up", "echo").code == 0
    row = fleet.status()["echo"]
    bridge = psutil.Process(row["pid"])
    stdio = list(bridge.children(recursive=True))
    assert stdio
    os.kill(bridge.pid, signal.SIGKILL)
    assert wait_for(
        lambda: not any(proc.is_running() and proc.status() != "zombie" for proc in stdio), 10
    )
    assert fleet.run("status").code in (2, 8)  # what is left is a stale PID file at most
    assert wait_for(lambda: not fleet.processes(), 10), fleet.processes()


def test_a_kept_port_someone_took_is_refused_not_moved(fleet: Fleet, spawn: Any) -> None:
    """Clients were given the kept URL: moving silently would send them, and the server's
    token, to whoever listens there now."""
    fleet.write(_yaml(free_port()))
    assert fleet.run("up", "echo").code == 0
    url = fleet.status()["echo"]["url"]
    assert fleet.run("down", "echo").code == 0
    port = urlsplit(url).port
    assert port is not None
    hold = f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()"
    stranger = spawn([sys.executable, "-c", f"{hold}; time.sleep(60)"])
    assert wait_for(lambda: _answers(port), 10)
    up = fleet.run("up", "echo")
    assert up.code == 1, up
    assert f"port {port}, kept for echo" in up.err
    assert f"PID {stranger.pid}" in up.err
    assert not _ours(fleet, stranger)


def test_restart_brings_back_a_server_that_crashed(fleet: Fleet) -> None:
    fleet.write(_yaml(free_port()))
    assert fleet.run("up", "adder").code == 0
    try:
        pid = fleet.status()["adder"]["pid"]
        os.killpg(pid, signal.SIGKILL)
        assert wait_for(lambda: fleet.status()["adder"]["state"] != "ready", 10, interval=CLI_POLL)
        again = fleet.run("restart", "adder")
        assert again.code == 0, again
        assert fleet.status()["adder"]["state"] == "ready"
    finally:
        fleet.run("down")
    assert wait_for(lambda: not fleet.processes(), 10)


def test_ctrl_c_during_up_takes_back_every_server_it_started(fleet: Fleet) -> None:
    # One member is ready before the Ctrl-C, the other still starting: `up` takes back both.
    slow = f"sleep 60; exec {sys.executable} {STDIO_SERVER}"
    fleet.write(
        "servers:\n"
        f"  quick:\n    command: [{sys.executable}, {STDIO_SERVER}]\n    transport: stdio\n"
        f"    env: {{{_UNMEASURED_YAML}}}\n"
        f"  slow:\n    command: [/bin/sh, -c, {json.dumps(slow)}]\n    transport: stdio\n"
    )
    up = subprocess.Popen(
        [TOOL, "up"], env=fleet.env, cwd=fleet.folder, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: fleet.status()["quick"]["state"] == "ready", 30, interval=CLI_POLL)
        assert up.poll() is None
        os.killpg(up.pid, signal.SIGINT)
        _, err = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 1, err
    assert "interrupted; stopped what this `up` had started (quick)" in err
    assert wait_for(lambda: not fleet.processes(), 10), describe(fleet.processes())
    assert fleet.run("status").code == 2


def test_another_projects_server_of_the_same_name_is_left_alone(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Servers are found by name: two projects may both call one `web`. Each acts only on
    what it started itself."""
    fleet.write(_yaml(free_port()))
    other = tmp_path / "other-project"
    other.mkdir()
    theirs = Fleet(other, fleet.env, fleet.forks)
    theirs.write(_yaml(free_port()))
    assert fleet.run("up", "echo").code == 0
    try:
        pid = fleet.status()["echo"]["pid"]
        again = theirs.run("up", "echo")
        assert again.code == 3, again
        assert f"it was started from {(fleet.folder / 'mcp-lifecycle.yaml').resolve()}" in again.err
        down = theirs.run("down", "echo")
        assert down.code == 5, down
        assert "not stopping it" in down.err
        assert fleet.status()["echo"]["pid"] == pid  # still running, untouched
        assert "echo runs, but it was started from" in theirs.run("status", "echo").out
        assert json.loads(theirs.run("client-config", "--json").out or "{}") == {} or (
            "echo" not in theirs.run("client-config", "--json").out
        )
    finally:
        assert fleet.run("down").code == 0
    assert wait_for(lambda: not fleet.processes(), 10)


def test_a_stdio_server_that_dies_at_once_is_reported_in_its_own_words(fleet: Fleet) -> None:
    crash = "import sys; print('bad API key', file=sys.stderr); sys.exit(3)"
    fleet.write(
        f"servers:\n  broken:\n    command: [{sys.executable}, -c, {json.dumps(crash)}]\n"
        "    transport: stdio\n"
    )
    up = fleet.run("up", "--timeout", "20")
    assert up.code == 1, up
    assert "broken did not answer MCP over stdio" in up.err
    assert "bad API key" in up.err  # its own words, in the log tail
    assert wait_for(lambda: not fleet.processes(), 10)
