"""Who may talk to a server over HTTP: a bearer token per server, kept in its private cache
root, and the host names and origins it answers to (against DNS rebinding).

The token is made at the first start (0600, never in a command line, an environment or a
log), kept across restarts so that client configurations keep working, and replaced by
`rotate-token`; a running server takes the new one on `reload`. Only the owner can read it,
so only the owner's clients (and `client-config`) can use the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from mcp_lifecycle.errors import ConfigurationError, os_error
from mcp_lifecycle.files.private import atomic_write, read_no_follow

_TOKEN_BYTES = 32
_MAX_TOKEN_FILE = 4096
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class _TokenSettings(Protocol):
    @property
    def port(self) -> int | None: ...
    @property
    def auth(self) -> str: ...
    @property
    def token_file(self) -> Path | None: ...


def read_token(path: Path) -> str | None:
    """The token in `path`; None if there is none (InsecurePathError for a symlink)."""
    data = read_no_follow(path, _MAX_TOKEN_FILE)
    token = data.decode("ascii", errors="replace").strip() if data else ""
    return token or None


def ensure_token(path: Path) -> str:
    """The server's token, made (0600, atomically) if it has none yet."""
    return read_token(path) or rotate_token(path)


def server_token(settings: _TokenSettings, path: Path, shown: Path | None = None) -> str | None:
    """The token an HTTP server with auth on requires: from `token_file` when one is given
    (someone else's to keep, as a mounted Secret: read, never made), else the one at `path`,
    made at the first start. None when auth is off or the server serves no HTTP. `shown` is
    the path named in errors, when `path` goes through a descriptor."""
    if settings.port is None or settings.auth == "none":
        return None
    given = settings.token_file
    try:
        if given is None:
            return ensure_token(path)
        token = read_token(given)
    except OSError as exc:
        raise os_error(exc, given or shown or path) from exc
    if token is None:
        raise ConfigurationError(
            f"token_file {given} holds no token", hint="put the token in it, or unset token_file"
        )
    return token


def rotate_token(path: Path) -> str:
    """A new token in place of the old one; clients need the new one from then on."""
    import secrets

    token = secrets.token_urlsafe(_TOKEN_BYTES)
    atomic_write(path, f"{token}\n".encode())
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int, extra: list[str]) -> set[str] | None:
    """The `Host` header values the server answers to: its loopback names with the port,
    plus the `allowed_hosts` setting. None (any host) for a listener beyond loopback with no
    `allowed_hosts`: there the token must keep strangers out."""
    if not is_loopback(host) and not extra:
        return None
    names = {f"{name}:{port}" for name in LOOPBACK_NAMES} if is_loopback(host) else set()
    for entry in extra:
        names.add(entry if ":" in entry.strip("[]").rsplit("]", 1)[-1] else f"{entry}:{port}")
    return names


def allowed_origins(hosts: set[str] | None) -> set[str]:
    """Browser origins that may call the server: its own addresses, over http or https."""
    return {f"{scheme}://{host}" for host in hosts or () for scheme in ("http", "https")}


def client_entry(url: str, token: str | None) -> dict[str, object]:
    """What an MCP client needs for one server: the shape Claude Code's `.mcp.json`, Claude
    Desktop and VS Code accept."""
    entry: dict[str, object] = {"type": "http", "url": url}
    if token is not None:
        entry["headers"] = {"Authorization": f"Bearer {token}"}
    return entry


def save_client_config(config: Mapping[str, Any], path: Path, keep: Path | None = None) -> None:
    """Write `config` to `path` whole or not at all, readable by the owner only (it holds the
    token). `keep` (the fleet file the servers come from) is never overwritten: a shell's
    `> .mcp.json` empties that file before the command even reads it."""
    import json
    import os

    if keep is not None and os.path.exists(path) and os.path.samefile(path, keep):
        raise ConfigurationError(
            f"{path} is the file the servers are declared in; writing it would lose them",
            hint="write the client's config elsewhere (e.g. --output .mcp.shared.json), or "
            "move the servers into mcp-lifecycle.yaml first",
        )
    atomic_write(path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
