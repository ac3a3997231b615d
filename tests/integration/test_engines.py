"""Fitting systemd and Kubernetes: generated service definitions, probe routes, `ls`."""

from __future__ import annotations

import configparser
import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import TESTS, Lifecycle, free_port, wait_for

BIN = Path(sys.executable).parent
DEMO = shutil.which("mcp-lifecycle-demo") or str(BIN / "mcp-lifecycle-demo")
TOOL = shutil.which("mcp-lifecycle") or str(BIN / "mcp-lifecycle")


def test_systemd_unit(lifecycle: Lifecycle, tmp_path: Path) -> None:
    result = lifecycle.run(
        "--port", "9123", "service", "systemd", MCP_SERVER_STOP_TIMEOUT_SECONDS="12"
    )
    assert result.code == 0, result.err
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(result.out)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].endswith('toy_server.py" "--set=port=9123" "start" "--foreground"')
    assert f'Environment="MCP_SERVER_CACHE_ROOT={lifecycle.cache_root}"' in result.out
    assert "MCP_SERVER_STOP_TIMEOUT_SECONDS=12" in result.out
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "mixed"
    assert service["TimeoutStopSec"] == "17"
    assert service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze:
        path = tmp_path / "toy.service"
        path.write_text(result.out)
        verify = subprocess.run(
            [analyze, "verify", str(path)], capture_output=True, text=True, check=False
        )
        assert verify.returncode == 0, verify.stderr


def test_launchd_agent(lifecycle: Lifecycle) -> None:
    """A LaunchAgent that plistlib (what plutil checks against) reads back: the server runs in
    the foreground, again on failure, logs to its log, and no secret is written into it."""
    import plistlib

    result = lifecycle.run(
        "--port",
        "9124",
        "service",
        "launchd",
        MCP_SERVER_STOP_TIMEOUT_SECONDS="12",
        MCP_SERVER_RESTART_POLICY="always",
    )
    assert result.code == 0, result.err
    agent = plistlib.loads(result.out.encode())
    assert agent["Label"] == "io.mcp-lifecycle.toy"
    assert agent["ProgramArguments"][-3:] == ["--set=port=9124", "start", "--foreground"]
    assert agent["ProgramArguments"][1].endswith("toy_server.py")
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["RunAtLoad"] is True
    assert agent["ExitTimeOut"] == 17
    assert agent["StandardErrorPath"] == str(lifecycle.cache_root / "toy.log")
    variables = agent["EnvironmentVariables"]
    assert variables["MCP_SERVER_CACHE_ROOT"] == str(lifecycle.cache_root)
    assert variables["MCP_SERVER_STOP_TIMEOUT_SECONDS"] == "12"
    assert "restart_policy (always) does not apply there" in result.err


def test_launchd_agent_keeps_secrets_out(lifecycle: Lifecycle) -> None:
    import plistlib

    lifecycle.script = TESTS / "servers" / "secret_server.py"
    result = lifecycle.run(
        "service", "launchd", MCP_SERVER_API_TOKEN="sk-very-secret", MCP_SERVER_GREETING="hi"
    )
    assert result.code == 0, result.err
    assert "sk-very-secret" not in result.out
    variables = plistlib.loads(result.out.encode())["EnvironmentVariables"]
    assert "MCP_SERVER_API_TOKEN" not in variables
    assert variables["MCP_SERVER_GREETING"] == "hi"
    assert "Not in the agent: MCP_SERVER_API_TOKEN" in result.err


def test_one_supervisor_under_systemd(lifecycle: Lifecycle) -> None:
    """A restart policy is systemd's to apply under systemd: the unit keeps Restart=on-failure,
    the output says the server's own policy does not apply, and the server started under a
    NOTIFY_SOCKET runs without a supervisor of ours."""
    result = lifecycle.run("service", "systemd", MCP_SERVER_RESTART_POLICY="always")
    assert result.code == 0, result.err
    assert "Restart=on-failure" in result.out
    assert "restart_policy (always) does not apply there" in result.err
    with lifecycle.foreground(
        MCP_SERVER_RESTART_POLICY="always", NOTIFY_SOCKET="@mcp-lifecycle-test-absent"
    ) as proc:
        assert wait_for(lambda: lifecycle.pid_file.exists() and lifecycle.pid() == proc.pid)
        status = lifecycle.run("status", "--json").json()
        assert status["supervisor_pid"] is None
        assert status["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "restart_policy always is left to systemd" in err


@pytest.mark.parametrize("port", [None, 9000])
def test_kubernetes_manifests(lifecycle: Lifecycle, port: int | None) -> None:
    if port:
        lifecycle.set_env(MCP_SERVER_PORT=str(port))
    refused = lifecycle.run("service", "kubernetes", "--image", "registry.local/toy:1")
    assert refused.code == 5, "toy_server.py is no console script the image could run"
    assert "--command" in refused.err
    result = lifecycle.run(
        "service", "kubernetes", "--image", "registry.local/toy:1", "--command", "toy_server.py"
    )
    assert result.code == 0, result.err
    documents = list(yaml.safe_load_all(result.out))
    kinds = [doc["kind"] for doc in documents]
    assert kinds == (["Deployment", "Service"] if port else ["Deployment"])
    deployment = documents[0]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 10  # stop timeout 5 + 5
    container = pod["containers"][0]
    assert container["image"] == "registry.local/toy:1"
    assert container["command"] == ["toy_server.py", "start", "--foreground"]
    assert container["livenessProbe"]["exec"]["command"] == ["toy_server.py", "health"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MCP_SERVER_CACHE_ROOT"] == "/var/lib/mcp-lifecycle/toy"
    assert {"name": "state", "mountPath": "/var/lib/mcp-lifecycle"} in container["volumeMounts"]
    assert {"name": "state", "emptyDir": {}} in pod["volumes"]
    assert deployment["spec"]["selector"]["matchLabels"] == deployment["metadata"]["labels"]
    if port:
        assert container["ports"] == [{"name": "mcp", "containerPort": 9000}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "mcp"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "mcp"}
        assert env["MCP_SERVER_HOST"] == "0.0.0.0"
        assert env["MCP_SERVER_PORT"] == "9000"
        service = documents[1]
        assert service["spec"]["ports"][0]["targetPort"] == "mcp"
        assert service["spec"]["selector"] == deployment["metadata"]["labels"]
    else:
        assert "exec" in container["readinessProbe"]


def test_no_service_for_a_stdio_server(lifecycle: Lifecycle) -> None:
    for engine in (["systemd"], ["kubernetes", "--image", "registry.local/toy:1"]):
        result = lifecycle.run("--set", "transport=stdio", "service", *engine)
        assert result.code == 5
        assert "speaks MCP over stdio" in result.err


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_healthz_and_readyz(lifecycle: Lifecycle) -> None:
    lifecycle.launcher = [DEMO]
    lifecycle.name = "mcp-lifecycle-demo"
    port = free_port()
    lifecycle.set_env(MCP_SERVER_PORT=str(port))
    assert lifecycle.run("start").code == 0
    assert _get(f"http://127.0.0.1:{port}/healthz") == (200, {"ok": True, "state": "ready"})
    assert _get(f"http://127.0.0.1:{port}/readyz") == (200, {"ready": True, "state": "ready"})
    assert lifecycle.run("stop").code == 0


def test_readyz_is_false_while_starting() -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from mcp_lifecycle.transports.http_server import _add_probe_routes

    class Fake:
        state = "starting"

    app = Starlette()
    _add_probe_routes(app, Fake())  # type: ignore[arg-type]
    client = TestClient(app)
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    Fake.state = "stopping"
    assert client.get("/readyz").json() == {"ready": False, "state": "stopping"}
    Fake.state = "failed"
    assert client.get("/healthz").status_code == 503


def test_ls_lists_registered_servers(lifecycle: Lifecycle) -> None:
    state = lifecycle.marks / "state"
    env = {k: v for k, v in lifecycle.env.items() if k != "MCP_SERVER_CACHE_ROOT"}
    env["XDG_STATE_HOME"] = str(state)
    lifecycle.env = env
    assert lifecycle.run("start").code == 0
    stale = state / "mcp-lifecycle" / "ghost"
    stale.mkdir(mode=0o700)
    (stale / "ghost.pid").write_text("999999\n")  # what a crashed server leaves
    (stale / "ghost.lock").write_text("")
    (state / "mcp-lifecycle" / "notes").mkdir()  # a folder that never was a server
    listed = subprocess.run(
        [TOOL, "ls", "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert listed.returncode == 0, listed.stderr
    entries = {entry["server"]: entry for entry in json.loads(listed.stdout)}
    assert entries["toy"]["condition"] == "running"
    assert entries["toy"]["state"] == "ready"
    assert entries["toy"]["pid"] == lifecycle.pid_in(state / "mcp-lifecycle" / "toy")
    assert entries["toy"]["uptime_seconds"] >= 0
    assert entries["ghost"]["condition"] == "stale"
    assert "notes" not in entries
    assert ".running" not in entries
    table = subprocess.run([TOOL, "ls"], capture_output=True, text=True, env=env, check=False)
    assert "toy" in table.stdout
    assert "ghost" in table.stdout
    assert lifecycle.run("stop").code == 0
    empty = subprocess.run(
        [TOOL, "ls", "--state-dir", str(lifecycle.marks / "nothing")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert "No servers found" in empty.stdout


def test_ls_forgets_a_server_that_never_became_ready(lifecycle: Lifecycle) -> None:
    """A folder whose every start failed is no server to list; one that ran and was stopped
    is listed as not running."""
    state = lifecycle.marks / "state"
    env = {k: v for k, v in lifecycle.env.items() if k != "MCP_SERVER_CACHE_ROOT"}
    env["XDG_STATE_HOME"] = str(state)
    lifecycle.env = env

    def listed() -> dict[str, str]:
        done = subprocess.run(
            [TOOL, "ls", "--json"], capture_output=True, text=True, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        return {entry["server"]: entry["condition"] for entry in json.loads(done.stdout)}

    assert lifecycle.run("start", TOY_MODE="crash").code != 0
    assert (state / "mcp-lifecycle" / "toy" / "toy.lock").exists()
    assert "toy" not in listed()
    # A snapshot written by an older version has no `ready_at`: it says nothing either way.
    snapshot = state / "mcp-lifecycle" / "toy" / "runtime_health.json"
    older = json.loads(snapshot.read_text())
    del older["ready_at"]
    snapshot.write_text(json.dumps(older))
    assert listed() == {"toy": "not running"}
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("stop").code == 0
    assert lifecycle.run("start", TOY_MODE="crash").code != 0
    assert listed() == {"toy": "not running"}
