"""`doctor`: the checks a person would otherwise do by hand, each with its fix."""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_lifecycle.errors import ConfigurationError, InsecurePathError
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.files import name_socket
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.private import validate_cache_ownership
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.transports import ports

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings
from mcp_lifecycle.control.inspect import Condition, ServerState, inspect_server

OK, WARN, ERROR = "ok", "warn", "error"
DEPENDENCIES = ("mcp", "typer", "pydantic", "pydantic-settings", "psutil", "uvicorn", "PyYAML")


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok, warn or error
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Diagnosis:
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(finding.level != ERROR for finding in self.findings)

    @property
    def exit_code(self) -> ExitCode:
        """1 when a check is an error; warnings alone still exit 0."""
        return ExitCode.SUCCESS if self.ok else ExitCode.GENERAL_ERROR


def versions() -> dict[str, str | None]:
    """Installed versions of the library and what it runs on, without importing any of them."""
    found: dict[str, str | None] = {"mcp-lifecycle": _version("mcp-lifecycle")}
    for name in DEPENDENCIES:
        found[name] = _version(name)
    found["python"] = ".".join(map(str, sys.version_info[:3]))
    return found


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def diagnose(load: Callable[[], MCPServerSettings]) -> list[Finding]:
    try:
        settings = load()
    except ConfigurationError as exc:
        return [Finding("settings", ERROR, exc.message, exc.hint or ""), *_dependencies()]
    findings = [Finding("settings", OK, "all settings are valid")]
    paths = ServerPaths.for_settings(settings)
    cache = _cache_root(paths.cache_root)
    findings.append(cache)
    state: ServerState | None = None
    if cache.level != ERROR:
        state, finding = _server_files(paths)
        findings.append(finding)
        findings.append(_name(paths))
    if settings.port is not None:
        findings.append(_port(LifecycleFields.of(settings), state))
        findings.append(_access(settings))
    findings.append(_log_file(paths.log, "server log"))
    if settings.log_file is not None:
        findings.append(_log_file(settings.log_file, "log_file"))
    findings.extend(_dependencies())
    return findings


def _cache_root(root: Path) -> Finding:
    if not os.path.lexists(root):
        return Finding("cache root", OK, f"{root} will be created (mode 700) on the first start")
    try:
        validate_cache_ownership(root)
    except InsecurePathError as exc:
        return Finding("cache root", ERROR, exc.message, exc.hint or "")
    mode = stat.S_IMODE(os.stat(root).st_mode)
    if mode & 0o077:
        return Finding(
            "cache root",
            WARN,
            f"{root} is readable by others (mode {mode:03o})",
            f"run `chmod 700 {root}`",
        )
    return Finding("cache root", OK, f"{root} is yours and private")


def _server_files(paths: ServerPaths) -> tuple[ServerState | None, Finding]:
    try:
        state = inspect_server(paths)
    except InsecurePathError as exc:
        return None, Finding("PID file", ERROR, exc.message, exc.hint or "")
    if state.condition is Condition.RUNNING:
        return state, Finding("PID file", OK, f"the server runs as PID {state.pid}")
    if state.condition is Condition.NOT_RUNNING:
        return state, Finding("PID file", OK, "the server is not running; no PID file")
    if state.condition is Condition.STALE:
        return state, Finding(
            "PID file", WARN, state.reason, "`start` removes it, or remove it yourself"
        )
    return state, Finding(
        "PID file", ERROR, state.reason, f"find the lock's holder with `fuser {paths.lock}`"
    )


def _name(paths: ServerPaths) -> Finding:
    claim = name_socket.name_claim(paths)
    if claim is None:
        if name_socket.is_bound(name_socket.address(paths.cache_root, paths.server_name)):
            return Finding(
                "name",
                WARN,
                "the server's abstract socket name is bound by a process that does not answer, "
                "so it cannot be identified: it cannot stop a start, but a server started now "
                "runs without the name",
                "look for it with `ss -xlp | grep mcp-lifecycle`",
            )
        return Finding("name", OK, "no other process holds the server's name")
    if claim.proven:
        return Finding("name", OK, f"held by the server (PID {claim.holder.pid})")
    return Finding(
        "name",
        WARN,
        f"the server's abstract socket name is held by {claim.describe()}: it cannot stop a "
        "start, but a server started now runs without the name, so deleting its cache root "
        "while it runs would let a second one start",
        f"find out why PID {claim.holder.pid} holds it (`ps -o user,cmd -p {claim.holder.pid}`)",
    )


def _access(settings: MCPServerSettings) -> Finding:
    from mcp_lifecycle.transports.access import is_loopback

    if settings.auth == "token":
        return Finding("access", OK, "HTTP clients need the server's token (`client-config`)")
    if is_loopback(settings.host):
        return Finding(
            "access",
            WARN,
            f"auth is off: every local user can use the server on {settings.host}",
            "set `auth: token` unless a gateway authenticates for it",
        )
    return Finding(
        "access",
        WARN,
        f"auth is off and the server listens on {settings.host}, beyond loopback: anyone who "
        "can reach it can use its tools",
        "set `auth: token`, or fence it (a gateway that authenticates, a NetworkPolicy)",
    )


def _port(settings: LifecycleFields, state: ServerState | None) -> Finding:
    port = settings.port
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, port or 0))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return Finding("port", ERROR, f"cannot bind {settings.host}:{port}: {exc}")
        else:
            return Finding("port", OK, f"{settings.host}:{port} is free")
    holder = ports.listener(port or 0)
    ours = state is not None and state.running and holder is not None
    if ours and holder is not None and state is not None and state.pid is not None:
        try:
            ours = os.getpgid(holder) == os.getpgid(state.pid)
        except ProcessLookupError:
            ours = False
    if ours:
        return Finding("port", OK, f"{settings.host}:{port} is served by this server")
    who = ports.describe(holder)
    return Finding(
        "port",
        ERROR,
        f"{settings.host}:{port} is in use by {who}",
        "stop it, or choose another port (--port or MCP_SERVER_PORT)",
    )


def _log_file(path: Path, what: str) -> Finding:
    if path.is_symlink():
        return Finding(
            what, ERROR, f"{path} is a symlink; a server refuses to log through it", f"rm {path}"
        )
    target = path if path.exists() else path.parent
    if not target.exists():
        return Finding(what, OK, f"{path} will be created")
    if os.access(target, os.W_OK):
        return Finding(what, OK, f"{path} is writable")
    return Finding(what, ERROR, f"{path} is not writable", f"check the permissions of {target}")


def _dependencies() -> list[Finding]:
    found = versions()
    missing = [name for name in DEPENDENCIES if found[name] is None]
    listed = ", ".join(f"{name} {found[name]}" for name in DEPENDENCIES if found[name])
    if missing:
        return [
            Finding(
                "dependencies",
                ERROR,
                f"missing: {', '.join(missing)}",
                f"pip install {' '.join(missing)}",
            )
        ]
    return [Finding("dependencies", OK, f"python {found['python']}, {listed}")]
