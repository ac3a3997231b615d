"""The fleet file: `mcp-lifecycle.yaml`, or a client's JSON config as it is (`mcpServers`, as
Claude Desktop and Claude Code write it; `servers`, as VS Code does).

Every problem is a ConfigurationError naming the file, the line and the server; nothing is
started from a file that has one.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from mcp_lifecycle.errors import ConfigurationError
from mcp_lifecycle.files.paths import server_name_problem

DEFAULT_FILE = Path("mcp-lifecycle.yaml")
RESTART_POLICIES = ("never", "on-failure", "always")
# Keys some clients write that mean nothing to a server's lifecycle.
_CLIENT_ONLY_KEYS = frozenset({"alwaysAllow", "autoApprove", "timeout", "description", "headers"})

Kind = Literal["http", "stdio", "remote"]


@dataclass(frozen=True)
class ServerEntry:
    """One server of the fleet.

    kind: `http`, a command that serves MCP over HTTP at `url` (ready when a handshake there
    succeeds); `stdio`, a command that speaks MCP on stdin/stdout, bridged to Streamable HTTP
    on `port` (None: a free port, kept for the name); `remote`, only a `url`, probed and never
    started.
    """

    name: str
    kind: Kind
    line: int
    command: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    port: int | None = None
    restart: str = "never"

    @property
    def started_by_us(self) -> bool:
        return self.kind != "remote"

    def to_json(self) -> str:
        """For the server process: the entry as it was when `up` read the file."""
        values = dataclasses.asdict(self)
        values["cwd"] = str(self.cwd) if self.cwd else None
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> ServerEntry:
        values = json.loads(text)
        values["command"] = tuple(values["command"])
        values["cwd"] = Path(values["cwd"]) if values["cwd"] else None
        return cls(**values)


@dataclass(frozen=True)
class Fleet:
    path: Path
    servers: dict[str, ServerEntry]

    def select(self, names: list[str] | None) -> list[ServerEntry]:
        """The servers named (all when none are), in the file's order."""
        if not names:
            return list(self.servers.values())
        unknown = [name for name in names if name not in self.servers]
        if unknown:
            known = ", ".join(self.servers) or "none"
            raise ConfigurationError(
                f"{self.path} declares no server {', '.join(map(repr, unknown))}",
                hint=f"the servers there: {known}",
            )
        return [self.servers[name] for name in dict.fromkeys(names)]


def find_fleet_file(given: Path | None) -> Path:
    path = given or DEFAULT_FILE
    if not path.is_file():
        where = f"{path}" if given else f"{DEFAULT_FILE} in {Path.cwd()}"
        raise ConfigurationError(
            f"no fleet file: {where} does not exist",
            hint="write mcp-lifecycle.yaml (see the README), or pass --file with a client's "
            "config such as .mcp.json",
        )
    return path


def read_fleet(path: Path) -> Fleet:
    """Parse and check the fleet file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    document, lines = _load(path, text)
    return parse_fleet(path, document, lines)


# -- reading the document, with the line of each key --------------------------------------------

_Lines = dict[tuple[str, ...], int]


def _load(path: Path, text: str) -> tuple[Any, _Lines]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # JSON a YAML parser refuses (tabs where YAML forbids them) is still JSON.
        try:
            return json.loads(text), {}
        except ValueError:
            pass
        mark = getattr(exc, "problem_mark", None)
        where = f"{path} line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(
            f"{where}: not valid YAML or JSON ({problem})", hint="fix the syntax there"
        ) from None
    return document, _key_lines(node, ())


def _key_lines(node: Any, prefix: tuple[str, ...]) -> _Lines:
    import yaml

    lines: _Lines = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                here = (*prefix, str(key.value))
                lines[here] = key.start_mark.line + 1
                lines.update(_key_lines(value, here))
    return lines


# -- checking it ----------------------------------------------------------------------------------


def parse_fleet(path: Path, document: Any, lines: _Lines) -> Fleet:
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigurationError(
            f"{path} must be a mapping with `servers:` (or a client config with `mcpServers`)"
        )
    client_key = next((key for key in ("mcpServers", "servers") if key in document), None)
    if client_key is None:
        raise ConfigurationError(
            f"{path} declares no servers",
            hint="list them under `servers:` (or `mcpServers` in a client's JSON config)",
        )
    extra = [key for key in document if key != client_key]
    if client_key == "servers" and extra and path.suffix != ".json":
        line = lines.get((extra[0],))
        where = f"{path} line {line}" if line else str(path)
        raise ConfigurationError(f"{where}: unknown key {extra[0]!r}", hint="only `servers:`")
    declared = document[client_key] or {}
    if not isinstance(declared, dict):
        raise ConfigurationError(f"{path}: `{client_key}` must map names to servers")
    client = path.suffix == ".json" or client_key == "mcpServers"
    base = path.resolve().parent
    servers: dict[str, ServerEntry] = {}
    for name, body in declared.items():
        place = _Place(path, str(name), lines, (client_key, str(name)))
        entry = _entry(place, body, base, client)
        if entry is not None:
            servers[entry.name] = entry
    _refuse_shared_ports(path, servers)
    return Fleet(path, servers)


@dataclass(frozen=True)
class _Place:
    """Where an entry stands in the file, for messages."""

    path: Path
    name: str
    lines: _Lines
    prefix: tuple[str, ...]

    def line(self, key: str | None = None) -> int:
        found = self.lines.get((*self.prefix, key)) if key else None
        return found or self.lines.get(self.prefix, 0)

    def error(self, problem: str, key: str | None = None, hint: str | None = None) -> Exception:
        line = self.line(key)
        where = f"{self.path} line {line}" if line else str(self.path)
        return ConfigurationError(f"{where}: server {self.name!r}: {problem}", hint=hint)


def _entry(place: _Place, body: Any, base: Path, client: bool) -> ServerEntry | None:
    problem = server_name_problem(place.name)
    if problem is not None:
        raise place.error(problem.replace(f"server name {place.name!r} ", "its name "))
    if not isinstance(body, dict):
        raise place.error("must be a mapping (command:, url:, ...)")
    if client:
        if body.get("disabled") is True:
            return None
        body = _from_client(place, body)
    known = {"command", "env", "cwd", "url", "transport", "port", "restart"}
    for key in body:
        if key not in known:
            raise place.error(
                f"unknown key {key!r}", key, hint=f"the keys: {', '.join(sorted(known))}"
            )
    command = _command(place, body.get("command"))
    url = _url(place, body.get("url"))
    transport = body.get("transport")
    if transport not in (None, "stdio", "http"):
        raise place.error("transport must be stdio or http", "transport")
    port = body.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise place.error("port must be a number", "port")
    if port is not None and not 1 <= port <= 65535:
        raise place.error("port must be between 1 and 65535", "port")
    restart = body.get("restart", "never")
    if restart not in RESTART_POLICIES:
        raise place.error(f"restart must be one of {', '.join(RESTART_POLICIES)}", "restart")
    kind = _kind(place, command, url, transport, port)
    return ServerEntry(
        name=place.name,
        kind=kind,
        line=place.line(),
        command=command,
        env=_env(place, body.get("env")),
        cwd=_cwd(place, body.get("cwd"), base) if kind != "remote" else None,
        url=url,
        port=port if kind == "stdio" else _url_port(url),
        restart=restart,
    )


def _from_client(place: _Place, body: dict[str, Any]) -> dict[str, Any]:
    """A client config's entry (`command` + `args`, `type`) in the fleet file's terms."""
    converted: dict[str, Any] = {}
    for key, value in body.items():
        if key in _CLIENT_ONLY_KEYS or key == "disabled":
            continue
        if key == "type":
            if value not in ("stdio", "http", "streamable-http", "sse"):
                raise place.error(f"unknown type {value!r}", "type")
            if value == "sse":
                raise place.error(
                    "SSE servers are not supported", "type", hint="use Streamable HTTP"
                )
            continue
        if key == "args":
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise place.error("args must be a list of strings", "args")
            continue
        converted[key] = value
    if "command" in body:
        command = body["command"]
        if not isinstance(command, str) or not command.strip():
            raise place.error("command must be a program name", "command")
        converted["command"] = [command, *body.get("args", [])]
        if "url" not in body:
            converted["transport"] = "stdio"
    return converted


def _command(place: _Place, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise place.error(f"command cannot be split into words: {exc}", "command") from None
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        parts = list(value)
    else:
        raise place.error("command must be a list of strings, or a string", "command")
    if not parts or not parts[0]:
        raise place.error("command is empty", "command")
    return tuple(parts)


def _url(place: _Place, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise place.error("url must be a string", "url")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise place.error(f"url {value!r} is not valid: {exc}", "url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise place.error(
            f"url {value!r} must be http://HOST:PORT/PATH",
            "url",
            hint="e.g. http://127.0.0.1:8801/mcp",
        )
    return value


def _url_port(url: str | None) -> int | None:
    if url is None:
        return None
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _env(place: _Place, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise place.error("env must map names to values", "env")
    env: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, dict | list) or item is None:
            raise place.error(f"env {key}: the value must be a string or a number", "env")
        env[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
    return env


def _cwd(place: _Place, value: Any, base: Path) -> Path:
    if value is None:
        return base
    if not isinstance(value, str):
        raise place.error("cwd must be a path", "cwd")
    folder = (base / value).resolve()
    if not folder.is_dir():
        raise place.error(f"cwd {folder} is not a folder", "cwd")
    return folder


def _kind(
    place: _Place,
    command: tuple[str, ...],
    url: str | None,
    transport: str | None,
    port: int | None,
) -> Kind:
    if transport == "stdio":
        if not command:
            raise place.error("a stdio server needs a command", "transport")
        if url is not None:
            raise place.error(
                "a stdio server is bridged to a URL of ours: give it a port, not a url", "url"
            )
        return "stdio"
    if port is not None:
        raise place.error("port is for stdio servers; an HTTP server's port is in its url", "port")
    if url is not None:
        return "http" if command else "remote"
    if command:
        raise place.error(
            "say how clients reach it",
            "command",
            hint="url: http://127.0.0.1:PORT/mcp (it serves HTTP), or transport: stdio",
        )
    raise place.error("missing command (or url, for a server that runs elsewhere)")


def _refuse_shared_ports(path: Path, servers: dict[str, ServerEntry]) -> None:
    taken: dict[int, ServerEntry] = {}
    for entry in servers.values():
        if entry.port is None or entry.kind == "remote":
            continue
        other = taken.get(entry.port)
        if other is not None:
            raise ConfigurationError(
                f"{path} line {entry.line}: server {entry.name!r}: port {entry.port} is also "
                f"{other.name!r}'s (line {other.line})",
                hint="give each server its own port",
            )
        taken[entry.port] = entry
