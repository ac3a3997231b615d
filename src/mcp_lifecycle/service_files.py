"""Service definitions for the engines that run servers in production: a systemd unit and a
Kubernetes Deployment with its Service. mcp-lifecycle fits them instead of imitating them: the
engine supervises `start --foreground`, and the library speaks its protocols (sd_notify,
signals, /healthz and /readyz, exit codes)."""

from __future__ import annotations

import math
import shlex
from typing import Any

from mcp_lifecycle.settings_view import LifecycleSettings

HEALTHZ = "/healthz"
READYZ = "/readyz"
# Time the engine gives `stop` beyond the server's own stop timeout before it SIGKILLs.
_STOP_MARGIN_SECONDS = 5


def systemd_unit(
    settings: LifecycleSettings,
    command: list[str],
    working_directory: str,
    environment: dict[str, str],
    user: str | None,
) -> str:
    """A Type=notify unit: systemd waits for READY=1, reloads with SIGHUP, and stops with
    SIGTERM to the server and then SIGKILL to what is left (KillMode=mixed).

    `command` carries the flags the definition was made with; `environment` the variables, the
    cache root pinned among them so that `status` run by `user` finds the server."""
    start = shlex.join([*command, "start", "--foreground"])
    env_lines = "".join(
        f"Environment={shlex.quote(f'{name}={value}')}\n"
        for name, value in sorted(environment.items())
    )
    user_line = f"User={user}\n" if user else ""
    stop_seconds = math.ceil(settings.stop_timeout_seconds) + _STOP_MARGIN_SECONDS
    watchdog = math.ceil(settings.health_ttl_seconds)
    return f"""\
[Unit]
Description=MCP server {settings.server_name} (mcp-lifecycle)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={start}
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory={working_directory}
{user_line}{env_lines}
KillMode=mixed
KillSignal=SIGTERM
TimeoutStartSec={math.ceil(settings.startup_timeout_seconds)}
TimeoutStopSec={stop_seconds}
WatchdogSec={watchdog}
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


STATE_MOUNT = "/var/lib/mcp-lifecycle"


def kubernetes_manifests(
    settings: LifecycleSettings, command: list[str], image: str, environment: dict[str, str]
) -> list[dict[str, Any]]:
    """A Deployment (one replica; the server is PID 1 in its container, in the foreground) and,
    for an HTTP server, a Service in front of it. The cache root lives in an emptyDir, in a
    folder the server creates private."""
    name = settings.server_name
    pinned = {
        **environment,
        "MCP_SERVER_JSON_LOGS": "true",
        "MCP_SERVER_CACHE_ROOT": f"{STATE_MOUNT}/{name}",
    }
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "mcp-lifecycle"}
    exec_health = {"exec": {"command": [*command, "health"]}}
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": [*command, "start", "--foreground"],
        "env": [{"name": key, "value": value} for key, value in sorted(pinned.items())],
        "volumeMounts": [{"name": "state", "mountPath": STATE_MOUNT}],
        # `health` as an exec probe: it checks the process, its lock and its snapshot.
        "livenessProbe": {**exec_health, "periodSeconds": 20, "timeoutSeconds": 5},
    }
    if settings.port is not None:
        overrides = {"MCP_SERVER_HOST": "0.0.0.0", "MCP_SERVER_PORT": str(settings.port)}  # noqa: S104
        container["env"] = [e for e in container["env"] if e["name"] not in overrides] + [
            {"name": key, "value": value} for key, value in overrides.items()
        ]
        container["ports"] = [{"name": "mcp", "containerPort": settings.port}]
        container["startupProbe"] = {
            "httpGet": {"path": HEALTHZ, "port": "mcp"},
            "periodSeconds": 2,
            "failureThreshold": max(1, math.ceil(settings.startup_timeout_seconds / 2)),
        }
        container["readinessProbe"] = {
            "httpGet": {"path": READYZ, "port": "mcp"},
            "periodSeconds": 5,
        }
    else:
        container["startupProbe"] = {
            **exec_health,
            "periodSeconds": 2,
            "failureThreshold": max(1, math.ceil(settings.startup_timeout_seconds / 2)),
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
                    "terminationGracePeriodSeconds": math.ceil(settings.stop_timeout_seconds)
                    + _STOP_MARGIN_SECONDS,
                    "containers": [container],
                    "volumes": [{"name": "state", "emptyDir": {}}],
                },
            },
        },
    }
    if settings.port is None:
        return [deployment]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "selector": dict(labels),
            "ports": [{"name": "mcp", "port": settings.port, "targetPort": "mcp"}],
        },
    }
    return [deployment, service]
