"""The fleet file: `mcp-lifecycle.yaml`, or a client's JSON config as it is (`mcpServers`, as
Claude Desktop and Claude Code write it; `servers`, as VS Code does).

Every problem is a ConfigurationError naming the file, the line and the server; nothing is
started from a file that has one.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import functools
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
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
        """The servers named (all when none are), in the file's order, each once."""
        if not names:
            return list(self.servers.values())
        unknown = [name for name in dict.fromkeys(names) if name not in self.servers]
        if unknown:
            known = ", ".join(self.servers) or "none"
            raise ConfigurationError(
                f"{self.path} declares no server {', '.join(map(repr, unknown))}",
                hint=f"the servers there: {known}",
            )
        wanted = set(names)
        return [entry for name, entry in self.servers.items() if name in wanted]


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
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from None
    try:
        # utf-8-sig: a byte order mark (Notepad writes one) is not part of the document.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigurationError(
            f"{path} line {line}: not UTF-8 text ({exc.reason})", hint="save it as UTF-8"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    document, marks = _load(path, text)
    return parse_fleet(path, document, marks)


# -- reading the document, with the line of each key --------------------------------------------

_Path = tuple[str, ...]


class _Marks(Protocol):
    """Where the document says what: the line of the key at `path` (keys from the top), and the
    text of the plain scalar there (`1.10`, which YAML reads as 1.1), both None when unknown."""

    def line(self, path: _Path) -> int | None: ...

    def text(self, path: _Path) -> str | None: ...


def _load(path: Path, text: str) -> tuple[Any, _Marks]:
    """JSON is read as JSON (a YAML 1.1 parser reads some of it otherwise: `\\ud83d\\ude00`
    escapes, `1e3`, tabs); a client's .json may have comments and trailing commas (VS Code's
    mcp.json does), which json5 reads (without the lines of its keys); anything else is YAML."""
    if path.suffix != ".json":
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return _load_yaml(path, text)
        return document, _JsonMarks(text)
    try:
        return json.loads(text), _JsonMarks(text)
    except RecursionError:
        raise _too_deep(path) from None
    except ValueError as exc:
        strict = exc
    import json5

    try:
        return json5.loads(text), _NoMarks()
    except RecursionError:
        raise _too_deep(path) from None
    except ValueError:
        pass
    if isinstance(strict, json.JSONDecodeError):
        where, problem = f"{path} line {strict.lineno}", strict.msg
    else:  # a number of more than 4300 digits
        where, problem = str(path), str(strict)
    raise ConfigurationError(f"{where}: not valid JSON ({problem})", hint="fix the syntax there")


def _too_deep(path: Path) -> ConfigurationError:
    return ConfigurationError(f"{path}: nested too deeply to read")


class _NoMarks:
    """A document read without positions: messages name the file and the server."""

    def line(self, path: _Path) -> int | None:
        return None

    def text(self, path: _Path) -> str | None:
        return None


class _JsonMarks:
    """The marks of a JSON document json.loads accepted: the keys down to an env's names."""

    def __init__(self, text: str) -> None:
        self._lines: dict[_Path, int] = {}
        self._texts: dict[_Path, str] = {}
        self._source = text
        self._breaks = [match.start() for match in re.finditer("\n", text)]
        self._decoder = json.JSONDecoder()
        self._walk(0, ())

    def line(self, path: _Path) -> int | None:
        return self._lines.get(path)

    def text(self, path: _Path) -> str | None:
        return self._texts.get(path)

    def _skip(self, at: int) -> int:
        while at < len(self._source) and self._source[at] in " \t\r\n":
            at += 1
        return at

    def _walk(self, at: int, path: _Path) -> int:
        """Note what stands at `at` (under `path`); where it ends."""
        text = self._source
        at = self._skip(at)
        if text[at] != "{" or len(path) > 3:  # below an env's names, nothing is looked up
            end = self._decoder.raw_decode(text, at)[1]
            if text[at] not in "{[":
                self._texts[path] = text[at:end]
            return end
        at = self._skip(at + 1)
        while text[at] != "}":
            key, end = self._decoder.raw_decode(text, at)
            here = (*path, key)
            self._lines[here] = bisect.bisect_left(self._breaks, at) + 1
            at = self._skip(self._walk(self._skip(end) + 1, here))  # past the colon
            if text[at] == ",":
                at = self._skip(at + 1)
        return at + 1


class _YamlMarks:
    """The marks of a composed YAML document, looked up in its nodes (an alias is the node it
    names, so a table of every path could grow without bound)."""

    def __init__(self, root: Any) -> None:
        self._root = root
        self._keys: dict[int, dict[str, tuple[Any, Any]]] = {}

    def _find(self, path: _Path) -> tuple[Any, Any] | None:
        import yaml

        node, found = self._root, None
        for key in path:
            if not isinstance(node, yaml.MappingNode):
                return None
            keys = self._keys.get(id(node))
            if keys is None:
                keys = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
                self._keys[id(node)] = keys
            found = keys.get(key)
            if found is None:
                return None
            node = found[1]
        return found

    def line(self, path: _Path) -> int | None:
        found = self._find(path)
        return int(found[0].start_mark.line) + 1 if found else None

    def text(self, path: _Path) -> str | None:
        import yaml

        found = self._find(path)
        if found is None or not isinstance(found[1], yaml.ScalarNode) or found[1].style:
            return None
        return str(found[1].value)


def _load_yaml(path: Path, text: str) -> tuple[Any, _Marks]:
    import yaml

    from mcp_lifecycle.files.yaml_text import TooDeep, compose_document

    try:
        node, document = compose_document(text, _yaml_loader)
    except TooDeep:
        raise _too_deep(path) from None
    except yaml.YAMLError as exc:
        raise _not_yaml(path, text, exc) from None
    return document, _YamlMarks(node)


def _not_yaml(path: Path, text: str, exc: Exception) -> ConfigurationError:
    from mcp_lifecycle.files.yaml_text import where_and_what

    line, problem = where_and_what(exc, text)
    where = f"{path} line {line}" if line else str(path)
    return ConfigurationError(
        f"{where}: not valid YAML or JSON ({problem})", hint="fix the syntax there"
    )


@functools.cache
def _yaml_loader(fast: bool) -> type[Any]:
    import yaml
    from yaml.constructor import ConstructorError

    from mcp_lifecycle.files.yaml_text import safe_loader

    base = safe_loader(fast)

    class Loader(base):  # type: ignore[valid-type,misc]
        """The safe loader, but a key is the text written (`on:` names a server `on`, not
        True, and `1.10:` one `1.10`)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if not isinstance(node, yaml.MappingNode):
                raise ConstructorError(None, None, f"expected a mapping, found {node.id}")
            self.flatten_mapping(node)
            mapping: dict[Any, Any] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise ConstructorError(
                        None, None, "a key must be a name, not a list or mapping", key.start_mark
                    )
                mapping[key.value] = self.construct_object(value, deep=deep)
            return mapping

    return Loader


# -- checking it ----------------------------------------------------------------------------------


def parse_fleet(path: Path, document: Any, marks: _Marks) -> Fleet:
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
        raise ConfigurationError(
            f"{_where(path, marks, (extra[0],))}: unknown key {extra[0]!r}", hint="only `servers:`"
        )
    declared = document[client_key] or {}
    if not isinstance(declared, dict):
        raise ConfigurationError(
            f"{_where(path, marks, (client_key,))}: `{client_key}` must map names to servers"
        )
    client = path.suffix == ".json" or client_key == "mcpServers"
    base = path.resolve().parent
    servers: dict[str, ServerEntry] = {}
    for name, body in declared.items():
        place = _Place(path, str(name), marks, (client_key, str(name)))
        entry = _entry(place, body, base, client)
        if entry is not None:
            servers[entry.name] = entry
    _refuse_shared_ports(path, servers)
    return Fleet(path, servers)


def _where(path: Path, marks: _Marks, key: _Path) -> str:
    line = marks.line(key)
    return f"{path} line {line}" if line else str(path)


@dataclass(frozen=True)
class _Place:
    """Where an entry stands in the file, for messages."""

    path: Path
    name: str
    marks: _Marks
    prefix: _Path

    def line(self, key: str | None = None) -> int:
        found = self.marks.line((*self.prefix, key)) if key else None
        return found or self.marks.line(self.prefix) or 0

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
        body = _expanded(place, _from_client(place, body), _workspace(place.path))
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
    if kind == "http" and url is not None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.query or parts.fragment:
            raise place.error(
                f"url {url!r}: a server we run is reached at http://HOST:PORT/PATH "
                "(no https, query or fragment)",
                "url",
                hint="a server that runs elsewhere (https) is declared with its url alone",
            )
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


# How clients write their variables: Claude Code `${VAR}` and `${VAR:-default}`, VS Code
# `${env:VAR}` and `${workspaceFolder}` (its `${input:...}` prompts the user: no one to ask here).
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _workspace(path: Path) -> Path:
    folder = path.resolve().parent
    return folder.parent if folder.name == ".vscode" else folder


def _expanded(place: _Place, body: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """The entry as the client would run it, its variables replaced from our environment."""

    def expand(value: Any, key: str) -> Any:
        if isinstance(value, str):
            return _VARIABLE.sub(lambda match: _variable(place, key, match[1], workspace), value)
        if isinstance(value, list):
            return [expand(item, key) for item in value]
        if isinstance(value, dict):
            return {name: expand(item, key) for name, item in value.items()}
        return value

    return {key: expand(value, key) for key, value in body.items()}


def _variable(place: _Place, key: str, inner: str, workspace: Path) -> str:
    if inner == "workspaceFolder":
        return str(workspace)
    if inner.startswith("input:"):
        raise place.error(
            f"${{{inner}}} asks the user for a value when VS Code starts the server",
            key,
            hint="put the value in the server's env, or in a variable: ${env:NAME}",
        )
    name, has_default, default = inner.removeprefix("env:").partition(":-")
    if not name.isidentifier():
        raise place.error(f"cannot expand ${{{inner}}}", key)
    value = os.environ.get(name)
    if value is None and not has_default:
        raise place.error(
            f"${{{inner}}} is not set in the environment",
            key,
            hint=f"export {name}=... (or write ${{{name}:-default}})",
        )
    return value if value is not None else default


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
    if any("\0" in part for part in parts):  # no program can be given one
        raise place.error("command holds a NUL character", "command")
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
    """A number, a boolean or a date is the text written there (`1.10`, not 1.1; `0755`, not
    493), as YAML does not keep it; a string as it is."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise place.error("env must map names to values", "env")
    env: dict[str, str] = {}
    for key, item in value.items():
        name = str(key)
        at = (*place.prefix, "env", name)
        if not name or "=" in name or "\0" in name:
            raise place.error(f"env {name!r} is not a variable name", "env")
        if isinstance(item, str):
            text = item
        elif isinstance(item, bool | int | float | datetime.date):
            written = str(item).lower() if isinstance(item, bool) else str(item)
            text = place.marks.text(at) or written
        else:
            raise place.error(f"env {name}: the value must be a string or a number", "env")
        if "\0" in text:
            raise place.error(f"env {name}: the value holds a NUL character", "env")
        env[name] = text
    return env


def _cwd(place: _Place, value: Any, base: Path) -> Path:
    if value is None:
        return base
    if not isinstance(value, str) or "\0" in value:
        raise place.error("cwd must be a path", "cwd")
    folder = (base / value).resolve()
    try:
        found = folder.is_dir()
    except OSError as exc:  # a name too long, a folder we may not enter: is_dir raises those
        raise place.error(f"cwd {folder} cannot be used: {exc.strerror}", "cwd") from None
    if not found:
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
