"""Service definitions for the engines that run servers in production: a systemd unit and a
Kubernetes Deployment with its Service. mcp-lifecycle fits them instead of imitating them: the
engine supervises `start --foreground`, and the library speaks its protocols (sd_notify,
signals, /healthz and /readyz, exit codes).

What goes into a definition is only what the server declares: its settings, given as
`MCP_SERVER_<FIELD>` variables or as flags. Secrets (fields typed `SecretStr`, or named like
one) never appear in clear: systemd reads them from an `EnvironmentFile=` of mode 0600,
Kubernetes from a `Secret` by reference.
"""

from __future__ import annotations

import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_lifecycle.errors import ConfigurationError
from mcp_lifecycle.files.private import TRUSTED_FOLDER_ENV
from mcp_lifecycle.settings.sources import ENV_PREFIX
from mcp_lifecycle.transports.endpoints import HEALTHZ, READYZ

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings

# Time the engine gives `stop` beyond the server's own stop timeout before it SIGKILLs.
_STOP_MARGIN_SECONDS = 5
# What marks a setting as a secret even when it is typed as a plain str: a word of its name
# (`api_key`, `db_dsn`), or a part of one (`authtoken`, `accesskey`).
_SECRET_WORDS = frozenset({"KEY", "DSN", "PASS", "PWD", "PIN", "AUTH", "CERT", "COOKIE"})
_SECRET_PARTS = (
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "APIKEY", "ACCESSKEY",
    "PRIVATEKEY", "SIGNINGKEY", "SESSIONKEY",
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# In an EnvironmentFile, a newline inside double quotes is part of the value (a PEM key).
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TEMP_FOLDERS = (Path("/tmp"), Path("/var/tmp"))  # noqa: S108 - names, not files we use


@dataclass(frozen=True)
class ServiceInputs:
    """The settings a definition carries: plain variables, secret variables, and flags."""

    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def is_secret(settings_cls: type[MCPServerSettings], name: str) -> bool:
    """A field typed SecretStr/SecretBytes (alone, in a union or a container, or anywhere in a
    nested model), or whose name, or a nested field's, sounds like a secret."""
    info = settings_cls.model_fields.get(name)
    return _sounds_secret(name) or (info is not None and _holds_secret(info.annotation, 0))


def _sounds_secret(name: str) -> bool:
    upper = name.upper()
    return bool(_SECRET_WORDS.intersection(upper.split("_"))) or any(
        part in upper for part in _SECRET_PARTS
    )


def _holds_secret(annotation: Any, depth: int) -> bool:
    from pydantic import BaseModel, SecretBytes, SecretStr

    if depth > 8:  # a model that contains itself
        return False
    if isinstance(annotation, type) and issubclass(annotation, SecretStr | SecretBytes):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(
            _sounds_secret(name) or _holds_secret(info.annotation, depth + 1)
            for name, info in annotation.model_fields.items()
        )
    return any(_holds_secret(arg, depth + 1) for arg in typing.get_args(annotation))


def service_inputs(
    settings_cls: type[MCPServerSettings],
    environ: dict[str, str],
    flags: dict[str, Any],
    prefixes: tuple[str, ...] = (ENV_PREFIX,),
) -> ServiceInputs:
    """Split what is in force now into what a definition may carry in clear and what it must
    carry by reference. Variables the settings class does not declare are left out."""
    declared = {
        f"{prefix}{name}".upper(): name for prefix in prefixes for name in settings_cls.model_fields
    }
    inputs = ServiceInputs()
    for variable, value in sorted(environ.items()):
        name = declared.get(variable.upper())
        if name is None:
            continue
        target = inputs.secrets if is_secret(settings_cls, name) else inputs.variables
        target[variable.upper()] = value
    for name, value in flags.items():
        text = _flag_text(value)
        if is_secret(settings_cls, name):
            inputs.secrets[f"{ENV_PREFIX}{name}".upper()] = text
        else:
            inputs.flags.append(f"--set={name}={text}")
    return inputs


def _flag_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "get_secret_value"):
        return str(value.get_secret_value())
    return str(value)


# -- systemd ---------------------------------------------------------------------------------


def _refuse_control(
    value: str, what: str, *, secret: bool = False, pattern: re.Pattern[str] = _CONTROL
) -> None:
    """A value that would change the unit or cannot be written: refused, and a secret one
    never shown."""
    shown = "" if secret else f": {value[:60]!r}"
    if pattern.search(value):
        raise ConfigurationError(
            f"{what} holds a newline or control character, which would change the unit{shown}",
            hint="remove it from the setting, variable or path",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{what} is not valid UTF-8{shown}", hint="fix the bytes of that value"
        ) from None


def systemd_word(value: str, what: str, *, argument: bool = False) -> str:
    """`value` as one word, read back by systemd exactly as given.

    Quoted, with backslash and quote escaped (systemd reads C escapes inside quotes), `%`
    doubled (specifiers are expanded even inside quotes) and, in a command's arguments, `$`
    doubled (variables are expanded there, though not in the executable's own name). A
    newline would start a directive of its own: refused.
    """
    _refuse_control(value, what)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if argument:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def systemd_path(value: str, what: str) -> str:
    """An absolute path for a directive that takes one path verbatim (no quotes): only
    specifiers are expanded there. Whitespace at either end would be dropped, and a backslash
    at the end would join the next line to this one (`User=` among them): refused."""
    _refuse_control(value, what)
    if value != value.strip() or value.endswith("\\") or not value.startswith("/"):
        raise ConfigurationError(
            f"{what} {value!r} cannot be written in a unit (it must be absolute, and neither "
            "end with a backslash nor begin or end with a space)",
            hint="use a path without them (generate the unit from another folder, or move it)",
        )
    return value.replace("%", "%%")


def environment_file(variables: dict[str, str]) -> str:
    """An EnvironmentFile= text: one assignment a line, values double-quoted as systemd's
    env-file parser reads them (backslash, quote, `$` and backquote escaped)."""
    lines = []
    for name, value in sorted(variables.items()):
        _refuse_control(value, f"the value of {name}", secret=True, pattern=_CONTROL_BUT_NEWLINE)
        escaped = re.sub(r'([\\"$`])', r"\\\1", value)
        lines.append(f'{name}="{escaped}"\n')
    return "".join(lines)


SYSTEM_SECRETS = Path("/etc/mcp-lifecycle")


@dataclass(frozen=True)
class SecretsFile:
    """Where the unit reads its secrets, where this command wrote them, and, when those
    differ, the command that moves them into place."""

    unit_path: Path
    written: Path
    install: str | None


def write_secrets(
    server_name: str,
    secrets: dict[str, str],
    target: Path | None,
    writable: list[Path],
    as_root: bool,
    own: bool = False,
) -> SecretsFile:
    """Write the secrets for an EnvironmentFile= that no one but root can replace.

    systemd (PID 1, as root) reads that file, following symlinks, before the service starts: a
    file the service user could replace would let them read any root-only file through the
    service's environment. So it lives outside the paths the service may write, in a folder
    only root may change: written there directly when we are root; otherwise a private copy
    is written to the first writable path and the command that installs it is returned.
    `own`: for a user's own service manager, which reads the file as that user: it is written
    in place, private to them (nothing of root's to reach through it).
    """
    from mcp_lifecycle.files.private import atomic_write, check_log_folder, ensure_private_folder

    unit_path = Path(os.path.abspath(target or SYSTEM_SECRETS / f"{server_name}.env"))
    if any(_under(unit_path, path) for path in writable):
        raise ConfigurationError(
            f"the secrets file {unit_path} lies where the service itself may write",
            hint=f"name one outside {', '.join(map(str, writable))} (--env-file)",
        )
    text = environment_file(secrets).encode()
    if as_root or own:
        ensure_private_folder(unit_path.parent)
        check_log_folder(unit_path)  # its folder must be one no one else can change
        atomic_write(unit_path, text)
        return SecretsFile(unit_path, unit_path, None)
    staged = writable[0] / f"{server_name}.env"
    atomic_write(staged, text)
    install = f"sudo install -D -m 600 -o root -g root {staged} {unit_path} && rm {staged}"
    return SecretsFile(unit_path, staged, install)


# The sandbox of a system unit: see docs/operations.md for why each line is here.
_SANDBOX = """\
# Sandbox: see docs/operations.md for why each line is here and what it costs.
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={read_write}
PrivateTmp={private_tmp}
PrivateDevices=yes
PrivateMounts=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
"""
# A user unit's: no mount namespaces or capability sets without privileges.
_USER_SANDBOX = """\
# Sandbox: what a user's own service manager can apply (see docs/operations.md).
UMask=0077
NoNewPrivileges=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
"""


def systemd_unit(
    settings: MCPServerSettings,
    command: list[str],
    working_directory: str,
    inputs: ServiceInputs,
    user: str | None,
    secrets_file: Path | None,
    per_user: bool = False,
) -> str:
    """A Type=notify unit: systemd waits for READY=1, reloads with SIGHUP, and stops with
    SIGTERM to the server and then SIGKILL to what is left (KillMode=mixed). Sandboxed to
    what a Python MCP server needs: see docs/operations.md for each directive.

    `per_user`: for the user's own service manager (`systemctl --user`): no User=, started
    with the user's session (default.target), and only the sandboxing an unprivileged manager
    can apply (the mount namespaces need privileges, or user namespaces it may not have)."""
    cache_root = settings.resolved_cache_root
    arguments = [*command[1:], *inputs.flags, "start", "--foreground"]
    start = " ".join(
        [
            systemd_word(command[0], "the command"),
            *(systemd_word(word, "the command", argument=True) for word in arguments),
        ]
    )
    variables = {**inputs.variables, f"{ENV_PREFIX}CACHE_ROOT": str(cache_root)}
    env_lines = "".join(
        f"Environment={systemd_word(f'{name}={value}', name)}\n"
        for name, value in sorted(variables.items())
    )
    if secrets_file is not None:
        env_lines += f"EnvironmentFile={systemd_path(str(secrets_file), 'the secrets file')}\n"
    writable = [cache_root]
    if settings.log_file is not None:
        writable.append(settings.log_file.parent)
    read_write = " ".join(systemd_word(str(path), "a writable path") for path in writable)
    # A private /tmp would hide a cache root kept there from `status` run outside the unit.
    # (the working directory too: the server reads its settings files there).
    seen = [*writable, Path(working_directory)]
    shared_tmp = any(_under(path, folder) for path in seen for folder in _TEMP_FOLDERS)
    private_tmp = "no" if shared_tmp else "yes"
    user_line = f"User={user}\n" if user and not per_user else ""
    stop_seconds = math.ceil(settings.stop_timeout_seconds) + _STOP_MARGIN_SECONDS
    watchdog = math.ceil(settings.health_ttl_seconds)
    workdir = systemd_path(working_directory, "the working directory")
    # A user's manager has no network-online.target to wait for.
    ordering = "" if per_user else "After=network-online.target\nWants=network-online.target\n"
    sandbox = (
        _USER_SANDBOX.format(private_tmp=private_tmp)
        if per_user
        else _SANDBOX.format(read_write=read_write, private_tmp=private_tmp)
    )
    target = "default.target" if per_user else "multi-user.target"
    return f"""\
[Unit]
Description=MCP server {settings.server_name} (mcp-lifecycle)
{ordering}
[Service]
Type=notify
NotifyAccess=main
ExecStart={start}
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory={workdir}
{user_line}{env_lines}
KillMode=mixed
KillSignal=SIGTERM
TimeoutStartSec={math.ceil(settings.startup_timeout_seconds)}
TimeoutStopSec={stop_seconds}
WatchdogSec={watchdog}
# systemd restarts the server: its own restart_policy does not apply under systemd (one
# supervisor, not two).
Restart=on-failure
RestartSec=2

{sandbox}
[Install]
WantedBy={target}
"""


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# -- Kubernetes ------------------------------------------------------------------------------

STATE_MOUNT = "/var/lib/mcp-lifecycle"
TOKEN_MOUNT = "/var/run/secrets/mcp-lifecycle"  # noqa: S105 - a folder, not a secret
# A non-root user any image can run as; fsGroup makes the emptyDir volumes its own.
RUN_AS = 65532


def object_name(server_name: str) -> str:
    """The server's name as Kubernetes names objects and labels: a DNS label (lowercase
    letters, digits and '-', starting with a letter, at most 63 characters)."""
    name = re.sub(r"[^a-z0-9-]", "-", server_name.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"mcp-{name}".rstrip("-")
    return name[:63].rstrip("-")


def secret_name(server_name: str) -> str:
    return f"{object_name(server_name)}-secrets"


def token_secret(server_name: str) -> str:
    return f"{object_name(server_name)}-token"


def launchd_agent(
    settings: MCPServerSettings, command: list[str], working_directory: str, inputs: ServiceInputs
) -> bytes:
    """A LaunchAgent property list (macOS): launchd starts the server at login and again when
    it exits with a failure, and stops it with SIGTERM, then SIGKILL after the stop timeout.
    Its variables are the declared, non-secret ones: launchd has no private file to read
    secrets from, and a plist is readable by the user's other programs."""
    import plistlib

    cache_root = settings.resolved_cache_root
    log = str(cache_root / f"{settings.server_name}.log")
    agent = {
        "Label": f"io.mcp-lifecycle.{settings.server_name}",
        "ProgramArguments": [*command, *inputs.flags, "start", "--foreground"],
        "WorkingDirectory": working_directory,
        "EnvironmentVariables": {
            **inputs.variables,
            f"{ENV_PREFIX}CACHE_ROOT": str(cache_root),
        },
        "RunAtLoad": True,
        # launchd restarts the server when it fails: its own restart_policy does not apply.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 2,
        "ExitTimeOut": math.ceil(settings.stop_timeout_seconds) + _STOP_MARGIN_SECONDS,
        "ProcessType": "Standard",
        "Umask": 0o077,
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    return plistlib.dumps(agent, sort_keys=False)


def kubernetes_manifests(
    settings: MCPServerSettings,
    command: list[str],
    image: str,
    inputs: ServiceInputs,
    resources: dict[str, dict[str, str]],
) -> list[dict[str, Any]]:
    """A Deployment (one replica; the server is PID 1 in its container, in the foreground) and,
    for an HTTP server, a Service in front of it. It meets the `restricted` Pod Security
    Standard: non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, a
    read-only root filesystem; the cache root and /tmp are emptyDir volumes."""
    name = object_name(settings.server_name)
    pinned = {
        **inputs.variables,
        f"{ENV_PREFIX}JSON_LOGS": "true",
        f"{ENV_PREFIX}CACHE_ROOT": f"{STATE_MOUNT}/{settings.server_name}",
        # The root filesystem is read-only: the settings cache of exec probes goes to /tmp.
        "XDG_CACHE_HOME": "/tmp/.cache",  # noqa: S108
        # Kubernetes makes an emptyDir mode 0777; in a pod of one user that is no threat.
        TRUSTED_FOLDER_ENV: STATE_MOUNT,
    }
    if settings.port is not None:
        pinned[f"{ENV_PREFIX}HOST"] = "0.0.0.0"  # noqa: S104
        pinned[f"{ENV_PREFIX}PORT"] = str(settings.port)
    env: list[dict[str, Any]] = [
        {"name": key, "value": value} for key, value in sorted(pinned.items())
    ]
    env += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name(name), "key": key}}}
        for key in sorted(inputs.secrets)
    ]
    token_auth = settings.port is not None and settings.auth == "token"
    if token_auth:
        # The bearer token comes from a Secret mounted as a file, never from the manifest.
        env.append({"name": f"{ENV_PREFIX}TOKEN_FILE", "value": f"{TOKEN_MOUNT}/token"})
    token_mounts: list[dict[str, Any]] = (
        [{"name": "token", "mountPath": TOKEN_MOUNT, "readOnly": True}] if token_auth else []
    )
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": "mcp-lifecycle",
    }
    cli = [*command, *inputs.flags]
    exec_health = {"exec": {"command": [*cli, "health"]}}
    startup_failures = max(1, math.ceil(settings.startup_timeout_seconds / 2))
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": [*cli, "start", "--foreground"],
        "env": env,
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            *token_mounts,
        ],
        "resources": resources,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # `health` as an exec probe: it checks the process, its lock and its snapshot.
        "livenessProbe": {**exec_health, "periodSeconds": 20, "timeoutSeconds": 5},
    }
    if settings.port is not None:
        container["ports"] = [{"name": "mcp", "containerPort": settings.port}]
        container["startupProbe"] = {
            "httpGet": {"path": HEALTHZ, "port": "mcp"},
            "periodSeconds": 2,
            "failureThreshold": startup_failures,
        }
        container["readinessProbe"] = {
            "httpGet": {"path": READYZ, "port": "mcp"},
            "periodSeconds": 5,
        }
    else:
        container["startupProbe"] = {
            **exec_health,
            "periodSeconds": 2,
            "failureThreshold": startup_failures,
        }
        container["readinessProbe"] = {**exec_health, "periodSeconds": 10}
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    # SIGTERM, then the server's own stop timeout, then a margin: matches `stop`.
                    "terminationGracePeriodSeconds": math.ceil(settings.stop_timeout_seconds)
                    + _STOP_MARGIN_SECONDS,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "state", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                        *(
                            [{"name": "token", "secret": {"secretName": token_secret(name)}}]
                            if token_auth
                            else []
                        ),
                    ],
                },
            },
        },
    }
    if settings.port is None:
        return [deployment]
    documents: list[dict[str, Any]] = [deployment]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "selector": dict(labels),
            "ports": [{"name": "mcp", "port": settings.port, "targetPort": "mcp"}],
        },
    }
    documents.append(service)
    if not token_auth:
        # No token: only pods of the server's own namespace may connect.
        documents.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": name, "labels": dict(labels)},
                "spec": {
                    "podSelector": {"matchLabels": dict(labels)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {}}]}],
                },
            }
        )
    return documents
