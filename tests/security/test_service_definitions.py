"""Generated service definitions: no injection, no secret in clear, the real user, a hardened
unit and a manifest that meets the restricted Pod Security Standard, each checked with the tool
its consumer uses (`systemd-analyze`, `kubernetes-validate`)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TESTS, Lifecycle
from tests.security.conftest import OtherUser

SECRET_SERVER = TESTS / "servers" / "secret_server.py"
ANALYZE = shutil.which("systemd-analyze")
VALIDATE = shutil.which("kubernetes-validate") or str(
    Path(sys.executable).parent / "kubernetes-validate"
)
needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _verify(unit: str, folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "server.service"
    path.write_text(unit)
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", str(path)], capture_output=True, text=True, check=False
    )


def _directives(unit: str, name: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{name}=")]


@pytest.mark.parametrize("how", ["variable", "flag"])
def test_a_newline_in_a_setting_cannot_add_a_directive(lifecycle: Lifecycle, how: str) -> None:
    evil = "/mcp\nExecStartPre=/bin/touch /tmp/pwned"
    if how == "variable":
        result = lifecycle.run("service", "systemd", MCP_SERVER_HTTP_PATH=evil)
    else:
        result = lifecycle.run("--set", f"http_path={evil}", "service", "systemd")
    assert result.code == 5, result
    assert result.out == ""
    assert "newline or control character" in result.err
    assert len(result.err.strip().splitlines()) == 2  # the error and its hint


@needs_systemd
def test_specials_are_escaped_as_systemd_reads_them(lifecycle: Lifecycle, tmp_path: Path) -> None:
    # A virtual environment at a path with '%' and a space: `systemd-analyze verify` finds the
    # interpreter only if the unit's ExecStart decodes back to exactly this path.
    venv = tmp_path / "we%ird venv"
    (venv / "bin").mkdir(parents=True)
    real = Path(sys.prefix)
    shutil.copy(real / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "lib").symlink_to(real / "lib")
    (venv / "bin" / "python").symlink_to(Path(sys.executable))
    lifecycle.launcher = [str(venv / "bin" / "python"), str(lifecycle.script)]
    value = '/a%b$c\\d"e'
    result = lifecycle.run("--set", f"http_path={value}", "service", "systemd")
    assert result.code == 0, result
    unit = result.out
    verify = _verify(unit, tmp_path)
    assert verify.returncode == 0, verify.stderr
    start = _directives(unit, "ExecStart")[0]
    assert start.startswith(f'"{tmp_path}/we%%ird venv/bin/python" ')
    assert '"--set=http_path=/a%%b$$c\\\\d\\"e"' in start
    # The executable is never expanded as a variable, and '%' is never a specifier.
    broken = unit.replace("we%%ird", "we%ird")
    assert _verify(broken, tmp_path).returncode != 0


def test_only_declared_settings_and_secrets_never_in_clear(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    lifecycle.script = SECRET_SERVER
    lifecycle.name = "secretive"
    pem = "-----BEGIN KEY-----\nMIIB\n-----END KEY-----"
    lifecycle.set_env(
        MCP_SERVER_API_TOKEN="hunter2",
        MCP_SERVER_AUTHTOKEN=pem,
        MCP_SERVER_DB='{"host": "db", "password": "nested-pw"}',
        MCP_SERVER_GREETING="bonjour",
        MCP_SERVER_UNDECLARED="nobody-asked",
    )
    env_file = tmp_path / "secrets" / "secretive.env"
    systemd = lifecycle.run(
        "--set", "database_password=s3cr%t", "service", "systemd", "--env-file", str(env_file)
    )
    assert systemd.code == 0, systemd
    unit = systemd.out
    for secret in ("hunter2", "s3cr%t", "s3cr%%t", "nobody-asked", "nested-pw", "MIIB"):
        assert secret not in unit
        assert secret not in systemd.err
    assert '"MCP_SERVER_GREETING=bonjour"' in unit
    assert "database_password" not in unit  # not even as a flag
    assert _directives(unit, "EnvironmentFile") == [str(env_file)]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    assert env_file.read_text() == (
        'MCP_SERVER_API_TOKEN="hunter2"\n'
        f'MCP_SERVER_AUTHTOKEN="{pem}"\n'
        'MCP_SERVER_DATABASE_PASSWORD="s3cr%t"\n'
        'MCP_SERVER_DB="{\\"host\\": \\"db\\", \\"password\\": \\"nested-pw\\"}"\n'
    )
    assert f"to {env_file}" in systemd.err
    if ANALYZE:
        verify = _verify(unit, tmp_path)
        assert verify.returncode == 0, verify.stderr

    inside = lifecycle.run(
        "service", "systemd", "--env-file", str(lifecycle.cache_root / "secretive.env")
    )
    assert inside.code == 5, inside
    assert "where the service itself may write" in inside.err

    kubernetes = lifecycle.run(
        "--set", "database_password=s3cr%t",
        "service", "kubernetes", "--image", "registry.local/s:1", "--command", "secretive",
    )  # fmt: skip
    assert kubernetes.code == 0, kubernetes
    for secret in ("hunter2", "s3cr%t", "nobody-asked", "nested-pw", "MIIB"):
        assert secret not in kubernetes.out
        assert secret not in kubernetes.err
    container = _deployment(kubernetes.out)["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert env["MCP_SERVER_GREETING"]["value"] == "bonjour"
    assert "MCP_SERVER_UNDECLARED" not in env
    for name in (
        "MCP_SERVER_API_TOKEN",
        "MCP_SERVER_AUTHTOKEN",
        "MCP_SERVER_DATABASE_PASSWORD",
        "MCP_SERVER_DB",
    ):
        assert env[name]["valueFrom"] == {
            "secretKeyRef": {"name": "secretive-secrets", "key": name}
        }
    assert "kubectl create secret generic secretive-secrets" in kubernetes.err


def test_a_secret_with_a_control_character_is_refused_and_never_shown(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    lifecycle.script = SECRET_SERVER
    lifecycle.name = "secretive"
    result = lifecycle.run(
        "--set", "api_token=hunter2\x1b[2J", "service", "systemd",
        "--env-file", str(tmp_path / "s.env"),
    )  # fmt: skip
    assert result.code == 5, result
    assert "control character" in result.err
    assert "hunter2" not in result.err
    assert not (tmp_path / "s.env").exists()


def test_a_working_directory_that_would_swallow_the_next_line(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    odd = tmp_path / "ends-with\\"
    odd.mkdir()
    result = lifecycle.run("service", "systemd", cwd=odd)
    assert result.code == 5, result
    assert "backslash" in result.err
    assert result.out == ""


def test_kubernetes_names_are_dns_labels() -> None:
    from mcp_lifecycle.service.definitions import object_name

    label = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
    for server in ("toy", "My_Server.", "9-lives", "x" * 63, "a.b.c", "mcp-lifecycle-demo"):
        name = object_name(server)
        assert label.fullmatch(name), (server, name)
        assert len(name) <= 63
    assert object_name("mcp-lifecycle-demo") == "mcp-lifecycle-demo"


@pytest.fixture
def their_folder(other_user: OtherUser) -> Iterator[Path]:
    """A folder under /tmp that belongs to the other user (our tmp_path is closed to them)."""
    folder = Path(tempfile.mkdtemp(prefix="mcpl-other-", dir="/tmp"))
    os.chown(folder, other_user.uid, other_user.gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_user_is_the_real_user_not_the_user_variable(
    other_user: OtherUser, their_folder: Path
) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    env = {
        **other_user.env,
        "PYTHONPATH": f"{src}:{site}",
        "MCP_SERVER_CACHE_ROOT": str(their_folder / "cache"),
        "XDG_CACHE_HOME": str(their_folder / "xdg"),
    }
    probe = subprocess.run(
        other_user.command(other_user.python, "-c", "import mcp_lifecycle, typer, pydantic"),
        env=env, capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"no interpreter {other_user.name} may run has our dependencies")
    # runuser sets USER and LOGNAME to the target user; `env` puts the lie back after it.
    lie = ["env", "USER=root", "LOGNAME=root", "MCP_SERVER_API_TOKEN=hunter2"]
    result = subprocess.run(
        other_user.command(*lie, other_user.python, str(SECRET_SERVER), "service", "systemd"),
        env=env, capture_output=True, text=True, check=False, cwd=str(their_folder),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _directives(result.stdout, "User") == [other_user.name]
    # Not root: the secrets are staged privately, and root is told to put them in place.
    staged = their_folder / "cache" / "secretive.env"
    assert staged.read_text() == 'MCP_SERVER_API_TOKEN="hunter2"\n'
    assert staged.stat().st_uid == other_user.uid
    assert _directives(result.stdout, "EnvironmentFile") == ["/etc/mcp-lifecycle/secretive.env"]
    assert (
        f"sudo install -D -m 600 -o root -g root {staged} /etc/mcp-lifecycle/secretive.env"
        in result.stderr
    )
    assert "hunter2" not in result.stdout + result.stderr


@needs_systemd
def test_the_unit_scores_4_or_lower_in_systemd_analyze_security(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    result = lifecycle.run("--port", "9000", "service", "systemd")
    assert result.code == 0, result
    path = tmp_path / "toy.service"
    path.write_text(result.out)
    assert ANALYZE is not None
    security = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert found, security.stdout + security.stderr
    assert float(found.group(1)) <= 4.0, security.stdout
    # Writable: only the cache root; home folders (where a venv may live) readable.
    assert _directives(result.out, "ReadWritePaths") == [f'"{lifecycle.cache_root}"']
    assert _directives(result.out, "ProtectHome") == ["read-only"]
    assert _directives(result.out, "ProtectSystem") == ["strict"]
    # The tests' cache root is under /tmp: a private /tmp would hide it from `status`.
    assert _directives(result.out, "PrivateTmp") == ["no"]


def _deployment(text: str) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(text))
    assert documents[0]["kind"] == "Deployment"
    return dict(documents[0])


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The `restricted` Pod Security Standard's rules, as its reference lists them."""
    problems = []
    pod_context = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(key)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        allowed = {"emptyDir", "configMap", "secret", "projected", "downwardAPI", "ephemeral"}
        if not kinds <= allowed | {"persistentVolumeClaim", "csi"}:
            problems.append(f"volume {volume['name']}: {kinds}")
    for container in pod["containers"]:
        context = container.get("securityContext", {})
        name = container["name"]
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot")
        if 0 in (context.get("runAsUser"), pod_context.get("runAsUser")):
            problems.append(f"{name}: runAsUser 0")
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities added")
        if container.get("ports") and any(p.get("hostPort") for p in container["ports"]):
            problems.append(f"{name}: hostPort")
    return problems


@pytest.mark.parametrize("port", [None, 9000])
def test_the_manifest_is_valid_and_restricted(
    lifecycle: Lifecycle, tmp_path: Path, port: int | None
) -> None:
    if port:
        lifecycle.set_env(MCP_SERVER_PORT=str(port))
    no_image = lifecycle.run("service", "kubernetes", "--command", "toy")
    assert no_image.code == 5, no_image
    assert "--image" in no_image.err
    result = lifecycle.run(
        "service", "kubernetes", "--image", "registry.local/toy:1", "--command", "toy",
        "--memory", "256Mi",
    )  # fmt: skip
    assert result.code == 0, result
    manifest = tmp_path / "toy.yaml"
    manifest.write_text(result.out)
    validate = subprocess.run(
        [VALIDATE, "--strict", str(manifest)], capture_output=True, text=True, check=False
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    pod = _deployment(result.out)["spec"]["template"]["spec"]
    assert _restricted_violations(pod) == []
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert container["resources"]["requests"]
    assert pod["terminationGracePeriodSeconds"] == 5 + 5  # the stop timeout, and a margin
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    token = {"/var/run/secrets/mcp-lifecycle"} if port else set()  # a Secret, read-only
    assert mounts == {"/var/lib/mcp-lifecycle", "/tmp", *token}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["MCP_LIFECYCLE_TRUSTED_FOLDER"] == "/var/lib/mcp-lifecycle"


def test_a_volume_others_may_write_is_trusted_only_when_named(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    """As in the manifest: Kubernetes makes an emptyDir 0777 (2777 with fsGroup)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o2777)
    lifecycle.set_env(MCP_SERVER_CACHE_ROOT=str(volume / "toy"))
    refused = lifecycle.run("start")
    assert refused.code == 6, refused
    assert "writable by others (mode 2777)" in refused.err
    lifecycle.set_env(MCP_LIFECYCLE_TRUSTED_FOLDER=str(volume))
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("health").code == 0
    assert lifecycle.run("stop").code == 0


def test_the_manifest_takes_the_token_from_a_secret_or_fences_the_pod(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    lifecycle.set_env(MCP_SERVER_PORT="9000")
    args = ["service", "kubernetes", "--image", "registry.local/toy:1", "--command", "toy"]
    with_token = lifecycle.run(*args)
    assert with_token.code == 0, with_token
    documents = list(yaml.safe_load_all(with_token.out))
    assert [doc["kind"] for doc in documents] == ["Deployment", "Service"]
    pod = documents[0]["spec"]["template"]["spec"]
    env = {item["name"]: item.get("value") for item in pod["containers"][0]["env"]}
    assert env["MCP_SERVER_TOKEN_FILE"] == "/var/run/secrets/mcp-lifecycle/token"
    assert {"name": "token", "secret": {"secretName": "toy-token"}} in pod["volumes"]
    assert "kubectl create secret generic toy-token" in with_token.err
    no_auth = lifecycle.run(*args, MCP_SERVER_AUTH="none")
    assert no_auth.code == 0, no_auth
    documents = list(yaml.safe_load_all(no_auth.out))
    assert [doc["kind"] for doc in documents] == ["Deployment", "Service", "NetworkPolicy"]
    policy = documents[2]["spec"]
    assert policy["ingress"] == [{"from": [{"podSelector": {}}]}]  # its namespace only
    for text in (with_token.out, no_auth.out):
        manifest = tmp_path / "m.yaml"
        manifest.write_text(text)
        validate = subprocess.run(
            [VALIDATE, "--strict", str(manifest)], capture_output=True, text=True, check=False
        )
        assert validate.returncode == 0, validate.stdout + validate.stderr


def test_a_user_unit_runs_under_the_users_own_manager(lifecycle: Lifecycle, tmp_path: Path) -> None:
    """`service systemd --user`: no User=, started with the user's session, only the sandbox an
    unprivileged manager can apply, and secrets in a 0600 file of the user's own."""
    lifecycle.script = SECRET_SERVER
    lifecycle.name = "secretive"
    lifecycle.set_env(MCP_SERVER_API_TOKEN="hunter2", XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = lifecycle.run("service", "systemd", "--user")
    assert result.code == 0, result
    unit = result.out
    assert "hunter2" not in unit
    assert "hunter2" not in result.err
    assert _directives(unit, "User") == []
    assert _directives(unit, "WantedBy") == ["default.target"]
    assert _directives(unit, "ProtectSystem") == []  # needs a privileged manager
    assert _directives(unit, "NoNewPrivileges") == ["yes"]
    assert _directives(unit, "SystemCallFilter") == ["@system-service", "~@privileged"]
    env_file = tmp_path / "config" / "mcp-lifecycle" / "secretive.env"
    assert _directives(unit, "EnvironmentFile") == [str(env_file)]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.stat().st_uid == os.getuid()
    assert env_file.read_text() == 'MCP_SERVER_API_TOKEN="hunter2"\n'
    if ANALYZE:
        path = tmp_path / "secretive.service"
        path.write_text(unit)
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        verify = subprocess.run(
            [ANALYZE, "--user", "verify", str(path)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        )
        assert verify.returncode == 0, verify.stderr
    system = lifecycle.run("service", "systemd", "--env-file", str(tmp_path / "root.env"))
    assert system.code == 0, system
    assert _directives(system.out, "WantedBy") == ["multi-user.target"]
    assert _directives(system.out, "ProtectSystem") == ["strict"]
