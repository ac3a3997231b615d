"""The fleet file parser (`fleet/spec.py`): every shape it accepts, every way it refuses a file
(exit code 5, naming the file, the line and the server), and properties over generated fleets.

Real files in tmp_path; nothing is mocked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_lifecycle.errors import ConfigurationError
from mcp_lifecycle.exit_codes import ExitCode
from mcp_lifecycle.fleet.spec import (
    RESTART_POLICIES,
    Fleet,
    Kind,
    ServerEntry,
    find_fleet_file,
    read_fleet,
)

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        read_fleet(path)
    assert caught.value.exit_code == ExitCode.CONFIGURATION_ERROR
    assert int(caught.value.exit_code) == 5
    return caught.value


def assert_names(exc: ConfigurationError, path: Path, line: int, server: str | None) -> None:
    """The message starts with `PATH line N:` and names the server."""
    assert exc.message.startswith(f"{path} line {line}: "), exc.message
    if server is not None:
        assert f"server {server!r}" in exc.message, exc.message


def line_of(text: str, fragment: str) -> int:
    """The line (from 1) of the only line of `text` that holds `fragment`."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(found) == 1, (fragment, found)
    return found[0]


# -- the fleet file (YAML) --------------------------------------------------------------------


def test_yaml_http_server(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mcp-lifecycle.yaml",
        "# the fleet\n"
        "servers:\n"
        "  web:\n"
        "    command: [python, server.py, --port, '8801']\n"
        "    url: http://127.0.0.1:8801/mcp\n"
        "    env: {TOKEN: abc}\n"
        "    restart: on-failure\n",
    )
    fleet = read_fleet(path)
    assert fleet.path == path
    assert fleet.servers == {
        "web": ServerEntry(
            name="web",
            kind="http",
            line=3,
            command=("python", "server.py", "--port", "8801"),
            env={"TOKEN": "abc"},
            cwd=tmp_path.resolve(),
            url="http://127.0.0.1:8801/mcp",
            port=8801,
            restart="on-failure",
        )
    }
    assert fleet.servers["web"].started_by_us


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://localhost/mcp", 80),
        ("http://[::1]:9443/mcp", 9443),
    ],
)
def test_an_http_servers_port_is_its_urls(tmp_path: Path, url: str, port: int) -> None:
    path = write(tmp_path, "f.yaml", f"servers:\n  s:\n    command: [srv]\n    url: '{url}'\n")
    entry = read_fleet(path).servers["s"]
    assert (entry.kind, entry.url, entry.port) == ("http", url, port)


def test_yaml_stdio_servers_with_and_without_a_port(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mcp-lifecycle.yaml",
        "servers:\n"
        "  fixed:\n"
        "    command: [npx, -y, some-server]\n"
        "    transport: stdio\n"
        "    port: 8802\n"
        "  free:\n"
        "    command: [uvx, other-server]\n"
        "    transport: stdio\n",
    )
    fixed, free = read_fleet(path).servers.values()
    assert fixed == ServerEntry(
        name="fixed",
        kind="stdio",
        line=2,
        command=("npx", "-y", "some-server"),
        cwd=tmp_path.resolve(),
        port=8802,
    )
    assert free == ServerEntry(
        name="free",
        kind="stdio",
        line=6,
        command=("uvx", "other-server"),
        cwd=tmp_path.resolve(),
        port=None,  # a free one is chosen (and kept) at `up`
    )
    assert fixed.restart == free.restart == "never"
    assert fixed.url is None


def test_a_remote_server_is_only_a_url(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", "servers:\n  far:\n    url: https://example.com/mcp\n")
    entry = read_fleet(path).servers["far"]
    assert entry == ServerEntry(
        name="far", kind="remote", line=2, url="https://example.com/mcp", port=443
    )
    assert entry.cwd is None
    assert not entry.started_by_us


def test_a_command_string_is_split_like_a_shell_does(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        "servers:\n"
        "  s:\n"
        """    command: python -m srv --greeting 'hello world' "a b" c\\ d\n"""
        "    transport: stdio\n",
    )
    assert read_fleet(path).servers["s"].command == (
        "python",
        "-m",
        "srv",
        "--greeting",
        "hello world",
        "a b",
        "c d",
    )


def test_env_numbers_and_booleans_become_the_text_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        "servers:\n"
        "  s:\n"
        "    command: [srv]\n"
        "    transport: stdio\n"
        "    env:\n"
        "      PORT: 8080\n"
        "      DEBUG: true\n"
        "      QUIET: false\n"
        "      RATIO: 0.5\n"
        "      VERSION: 1.10\n"  # YAML reads 1.1
        "      MODE: 0755\n"  # YAML reads 493
        "      AT: 12:30\n"  # YAML reads 750
        "      FLAG: yes\n"  # YAML reads True
        "      DAY: 2024-01-02\n"  # YAML reads a date
        "      QUOTED: '1.10'\n"
        "      PLAIN: hello\n",
    )
    assert read_fleet(path).servers["s"].env == {
        "PORT": "8080",
        "DEBUG": "true",
        "QUIET": "false",
        "RATIO": "0.5",
        "VERSION": "1.10",
        "MODE": "0755",
        "AT": "12:30",
        "FLAG": "yes",
        "DAY": "2024-01-02",
        "QUOTED": "1.10",
        "PLAIN": "hello",
    }


def test_env_numbers_and_booleans_in_json_become_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ".mcp.json",
        '{"mcpServers": {"s": {"command": "srv", "env": '
        '{"PORT": 8080, "DEBUG": true, "OFF": false, "BIG": 1e3, "R": 0.25, "S": "x"}}}}',
    )
    assert read_fleet(path).servers["s"].env == {
        "PORT": "8080",
        "DEBUG": "true",
        "OFF": "false",
        "BIG": "1e3",
        "R": "0.25",
        "S": "x",
    }


def test_env_shared_through_an_alias_is_the_same_for_both(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        "common: &env {VERSION: 1.10, N: 7}\n"
        "servers:\n"
        "  a: {command: [a], transport: stdio, env: *env}\n"
        "  b: {command: [b], transport: stdio, env: *env}\n",
    )
    # `common` is an unknown key of a fleet file; a client's file may hold other keys
    assert_names(refused(path), path, 1, None)
    client = write(
        tmp_path,
        "f2.yaml",
        "mcpServers:\n"
        "  a: {command: a, env: &env {VERSION: 1.10, N: 7}}\n"
        "  b: {command: b, env: *env}\n",
    )
    servers = read_fleet(client).servers
    assert servers["a"].env == servers["b"].env == {"VERSION": "1.10", "N": "7"}


def test_cwd_is_relative_to_the_file_not_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    path = write(
        project,
        "mcp-lifecycle.yaml",
        "servers:\n"
        "  inside: {command: [a], transport: stdio, cwd: sub}\n"
        "  above: {command: [b], transport: stdio, cwd: ../elsewhere/./sub/..}\n"
        "  default: {command: [c], transport: stdio}\n"
        f"  absolute: {{command: [d], transport: stdio, cwd: '{tmp_path}'}}\n"
        "  remote: {url: 'http://h:1/mcp', cwd: sub}\n",
    )
    servers = read_fleet(Path("..") / "project" / "mcp-lifecycle.yaml").servers
    assert servers["inside"].cwd == (project / "sub").resolve()
    assert servers["above"].cwd == elsewhere.resolve()
    assert servers["default"].cwd == project.resolve()
    assert servers["absolute"].cwd == tmp_path.resolve()
    assert servers["remote"].cwd is None  # never started: no folder to run in
    assert read_fleet(path).servers == servers


def test_a_missing_cwd_folder_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        "servers:\n  s:\n    command: [a]\n    transport: stdio\n    cwd: nowhere\n",
    )
    exc = refused(path)
    assert_names(exc, path, 5, "s")
    assert str(tmp_path.resolve() / "nowhere") in exc.message


def test_a_cwd_too_long_for_a_file_name_is_refused_not_raised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        f"servers:\n  s:\n    command: [a]\n    transport: stdio\n    cwd: {'x' * 300}\n",
    )
    assert_names(refused(path), path, 5, "s")


@pytest.mark.parametrize("name", ["on", "yes", "1.10", "010", "null", "1_000", "0x1F"])
def test_a_server_name_is_the_text_written(tmp_path: Path, name: str) -> None:
    """YAML 1.1 reads these keys as True, 1.1, 8, None, 1000, 31: a server keeps its name."""
    path = write(tmp_path, "f.yaml", f"servers:\n  {name}:\n    url: http://h:1/mcp\n")
    entry = read_fleet(path).servers[name]
    assert (entry.name, entry.line) == (name, 2)


def test_yaml_merge_keys_and_anchors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mcp-lifecycle.yaml",
        "x-base: &base\n"
        "  transport: stdio\n"
        "  restart: always\n"
        "mcpServers:\n"
        "  a:\n"
        "    <<: *base\n"
        "    command: srv-a\n"
        "  b:\n"
        "    <<: *base\n"
        "    command: srv-b\n"
        "    restart: never\n",
    )
    a, b = read_fleet(path).servers.values()
    assert (a.kind, a.command, a.restart, a.line) == ("stdio", ("srv-a",), "always", 5)
    assert (b.kind, b.command, b.restart, b.line) == ("stdio", ("srv-b",), "never", 8)


def test_a_bom_and_windows_line_ends_are_read(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(
        b"\xef\xbb\xbfservers:\r\n  a:\r\n    command: [a]\r\n    transport: stdio\r\n"
        b"  b:\r\n    command: [b]\r\n    colour: red\r\n"
    )
    assert_names(refused(path), path, 7, "b")


def test_an_empty_servers_mapping_is_an_empty_fleet(tmp_path: Path) -> None:
    for text in ("servers: {}\n", "servers:\n", '{"servers": {}}'):
        fleet = read_fleet(write(tmp_path, "f.yaml", text))
        assert fleet.servers == {}
        assert fleet.select(None) == []


# -- clients' JSON configs, as they are -------------------------------------------------------


def test_claude_code_mcp_json_with_a_stdio_and_an_http_entry(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "mcpServers": {
                "echo": {
                    "type": "stdio",
                    "command": "python",
                    "args": ["echo.py", "--loud"],
                    "env": {"GREETING": "hi"},
                },
                "docs": {
                    "type": "http",
                    "url": "https://example.com/mcp",
                    "headers": {"Authorization": "Bearer secret"},
                },
            }
        },
        indent=2,
    )
    path = write(tmp_path, ".mcp.json", text)
    fleet = read_fleet(path)
    assert list(fleet.servers) == ["echo", "docs"]
    assert fleet.servers["echo"] == ServerEntry(
        name="echo",
        kind="stdio",  # bridged
        line=line_of(text, '"echo"'),
        command=("python", "echo.py", "--loud"),
        env={"GREETING": "hi"},
        cwd=tmp_path.resolve(),
    )
    assert fleet.servers["docs"] == ServerEntry(
        name="docs",
        kind="remote",  # only probed
        line=line_of(text, '"docs"'),
        url="https://example.com/mcp",
        port=443,
    )


def test_claude_desktop_config(tmp_path: Path) -> None:
    text = (
        "{\n"
        '  "globalShortcut": "Ctrl+Space",\n'
        '  "mcpServers": {\n'
        '    "filesystem": {\n'
        '      "command": "npx",\n'
        '      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp/my files"]\n'
        "    },\n"
        '    "app": {"command": "/Applications/My App/bin/server"},\n'
        '    "off": {"command": "never-run", "disabled": true},\n'
        '    "on": {"command": "run", "disabled": false, "port": 9100}\n'
        "  }\n"
        "}\n"
    )
    path = write(tmp_path, "claude_desktop_config.json", text)
    servers = read_fleet(path).servers
    assert list(servers) == ["filesystem", "app", "on"]  # "off" is disabled
    assert servers["filesystem"] == ServerEntry(
        name="filesystem",
        kind="stdio",
        line=4,
        command=("npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp/my files"),
        cwd=tmp_path.resolve(),
    )
    # A client runs `command` as a program, never through a shell: it is not split.
    assert servers["app"].command == ("/Applications/My App/bin/server",)
    assert (servers["on"].kind, servers["on"].port, servers["on"].line) == ("stdio", 9100, 10)


def test_vscode_mcp_json_with_type_inputs_comments_and_trailing_commas(tmp_path: Path) -> None:
    text = (
        "{\n"
        '  "inputs": [{"type": "promptString", "id": "key", "password": true}],\n'
        "  // the servers of this workspace\n"
        '  "servers": {\n'
        '    "time": {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"],},\n'
        "    /* an HTTP server\n"
        "       run elsewhere */\n"
        '    "gh": {"type": "http", "url": "http://127.0.0.1:9100/mcp"},\n'
        '    "url-with-slashes": {"type": "http", "url": "https://h/a//b/* x */"},\n'
        "  },\n"
        "}\n"
    )
    path = write(tmp_path, "mcp.json", text)
    servers = read_fleet(path).servers
    # json5 reads JSON with comments, without the lines of its keys (line 0: unknown).
    assert servers["time"] == ServerEntry(
        name="time",
        kind="stdio",
        line=0,
        command=("uvx", "mcp-server-time"),
        cwd=tmp_path.resolve(),
    )
    assert servers["gh"] == ServerEntry(
        name="gh", kind="remote", line=0, url="http://127.0.0.1:9100/mcp", port=9100
    )
    assert servers["url-with-slashes"].url == "https://h/a//b/* x */"  # strings keep "//"


def test_a_client_entry_with_a_command_and_a_url_is_an_http_server(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ".mcp.json",
        '{"mcpServers": {"s": {"command": "srv", "args": ["--http"], '
        '"url": "http://127.0.0.1:8811/mcp", "timeout": 5, "alwaysAllow": []}}}',
    )
    entry = read_fleet(path).servers["s"]
    assert (entry.kind, entry.command, entry.port) == ("http", ("srv", "--http"), 8811)


def test_json_escapes_and_tabs_are_read_as_json(tmp_path: Path) -> None:
    """`json.dumps` escapes non-ASCII (a surrogate pair for an emoji), and may indent with
    tabs: both are JSON, and YAML 1.1 reads neither the same."""
    config = {"mcpServers": {"s": {"command": "srv-\U0001f600", "args": ["é", "\t"]}}}
    text = json.dumps(config, indent="\t")
    path = write(tmp_path, ".mcp.json", text)
    entry = read_fleet(path).servers["s"]
    assert entry.command == ("srv-\U0001f600", "é", "\t")
    assert entry.line == line_of(text, '"s"') == 3


def test_json_in_a_yaml_named_file_is_read_as_json(tmp_path: Path) -> None:
    text = json.dumps(
        {"servers": {"s": {"command": ["a", "\U0001f600"], "transport": "stdio"}}}, indent=1
    )
    path = write(tmp_path, "mcp-lifecycle.yaml", text)
    entry = read_fleet(path).servers["s"]
    assert (entry.command, entry.line) == (("a", "\U0001f600"), 3)


# -- Fleet.select ----------------------------------------------------------------------------


@pytest.fixture
def three(tmp_path: Path) -> Fleet:
    return read_fleet(
        write(
            tmp_path,
            "f.yaml",
            "servers:\n"
            "  c: {url: 'http://h:1/mcp'}\n"
            "  a: {url: 'http://h:2/mcp'}\n"
            "  b: {url: 'http://h:3/mcp'}\n",
        )
    )


def test_select_all_in_the_files_order(three: Fleet) -> None:
    assert [e.name for e in three.select(None)] == ["c", "a", "b"]
    assert [e.name for e in three.select([])] == ["c", "a", "b"]


def test_select_some_in_the_files_order_each_once(three: Fleet) -> None:
    assert [e.name for e in three.select(["b", "c"])] == ["c", "b"]
    assert [e.name for e in three.select(["a", "a", "b", "a"])] == ["a", "b"]
    assert three.select(["a"]) == [three.servers["a"]]


def test_select_an_unknown_name(three: Fleet) -> None:
    with pytest.raises(ConfigurationError) as caught:
        three.select(["a", "nope", "zip", "nope"])
    exc = caught.value
    assert exc.exit_code == ExitCode.CONFIGURATION_ERROR
    assert exc.message == f"{three.path} declares no server 'nope', 'zip'"
    assert exc.hint == "the servers there: c, a, b"


def test_find_fleet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        find_fleet_file(None)
    assert "mcp-lifecycle.yaml" in caught.value.message
    assert str(Path.cwd()) in caught.value.message
    with pytest.raises(ConfigurationError) as given_missing:
        find_fleet_file(Path("other.json"))
    assert "other.json does not exist" in given_missing.value.message
    write(tmp_path, "mcp-lifecycle.yaml", "servers: {}\n")
    assert find_fleet_file(None) == Path("mcp-lifecycle.yaml")


# -- refusals: exit code 5, the file, the line, the server ------------------------------------


def test_unknown_key_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mcp-lifecycle.yaml",
        "servers:\n"
        "  adder:\n"
        "    command: [x]\n"
        "    url: http://127.0.0.1:1/mcp\n"
        "\n"
        "    # a comment\n"
        "    colour: red\n",
    )
    exc = refused(path)
    assert_names(exc, path, 7, "adder")
    assert "unknown key 'colour'" in exc.message
    assert exc.hint is not None
    assert "command" in exc.hint


def test_unknown_key_json(tmp_path: Path) -> None:
    text = (
        "{\n"
        '  "mcpServers": {\n'
        '    "ok": {"command": "a"},\n'
        '    "adder": {\n'
        '      "command": "x",\n'
        '      "colour": "red"\n'
        "    }\n"
        "  }\n"
        "}\n"
    )
    path = write(tmp_path, ".mcp.json", text)
    exc = refused(path)
    assert_names(exc, path, 6, "adder")
    assert "unknown key 'colour'" in exc.message


def test_unknown_top_level_key_of_a_fleet_file(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", "servers:\n  a: {url: 'http://h:1/m'}\nversion: 2\n")
    exc = refused(path)
    assert_names(exc, path, 3, None)
    assert "unknown key 'version'" in exc.message


def test_missing_command_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        "servers:\n  ok:\n    url: http://h:1/m\n  adder:\n    env: {A: b}\n    restart: always\n",
    )
    exc = refused(path)
    assert_names(exc, path, 4, "adder")
    assert "missing command" in exc.message


def test_missing_command_json(tmp_path: Path) -> None:
    text = '{\n  "mcpServers": {\n    "adder": {\n      "env": {"A": "b"}\n    }\n  }\n}\n'
    path = write(tmp_path, ".mcp.json", text)
    exc = refused(path)
    assert_names(exc, path, 3, "adder")
    assert "missing command" in exc.message


def test_duplicate_port_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        "servers:\n"
        "  a:\n    command: [x]\n    transport: stdio\n    port: 9001\n"
        "  b:\n    command: [y]\n    transport: stdio\n    port: 9001\n",
    )
    exc = refused(path)
    assert_names(exc, path, 6, "b")
    assert "port 9001 is also 'a''s (line 2)" in exc.message


def test_duplicate_port_between_a_bridge_and_an_http_server(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        "servers:\n"
        "  web: {command: [w], url: 'http://127.0.0.1:9002/mcp'}\n"
        "  far: {url: 'http://127.0.0.1:9002/mcp'}\n"  # remote: ours never binds it
        "  bridge: {command: [b], transport: stdio, port: 9002}\n",
    )
    exc = refused(path)
    assert_names(exc, path, 4, "bridge")
    assert "'web''s (line 2)" in exc.message


def test_duplicate_port_json(tmp_path: Path) -> None:
    text = (
        "{\n"
        '  "mcpServers": {\n'
        '    "a": {"command": "x", "port": 9003},\n'
        '    "b": {"command": "y", "port": 9004},\n'
        '    "c": {"command": "z", "port": 9003}\n'
        "  }\n"
        "}\n"
    )
    path = write(tmp_path, ".mcp.json", text)
    exc = refused(path)
    assert_names(exc, path, 5, "c")
    assert "'a''s (line 3)" in exc.message


@pytest.mark.parametrize(
    "name", ["../escape", ".hidden", "-option", "a/b", "with space", "x" * 64, "é"]
)
def test_unsafe_name_yaml(tmp_path: Path, name: str) -> None:
    path = write(
        tmp_path,
        "f.yaml",
        f"servers:\n  ok:\n    url: http://h:1/m\n  {json.dumps(name)}:\n    url: http://h:2/m\n",
    )
    exc = refused(path)
    assert_names(exc, path, 4, name)
    assert "not a safe file name" in exc.message


def test_unsafe_name_json(tmp_path: Path) -> None:
    text = '{\n  "mcpServers": {\n\n    "../../etc": {"command": "x"}\n  }\n}\n'
    path = write(tmp_path, ".mcp.json", text)
    exc = refused(path)
    assert_names(exc, path, 4, "../../etc")
    assert "its name is not a safe file name" in exc.message


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("servers:\n  a:\n\tcommand: [x]\n", 3, "found character '\\t'"),
        ("servers:\n  a:\n    command: [x, y\n    transport: stdio\n", 4, "expected ','"),
        ("servers:\n  a:\n    command: [x]\n   transport: stdio\n", 4, "expected <block end>"),
        ("servers:\n  a:\n    command: [x]\n    env: *nope\n", 4, "undefined alias 'nope'"),
        ("servers:\n  a:\n    command: [x]\n    env: !!python/object:os.system x\n", 4, "tag"),
        ("servers:\n  a:\n    transport: stdio\n    env: {D: 2024-02-30}\n", 4, "day is out"),
        ("servers:\n  a:\n    transport: stdio\n    port: " + "1" * 5000 + "\n", 4, "digits"),
        ("servers:\n  a:\n    command: [x]\n    ? [k]\n    : v\n", 4, "must be a name"),
        ("servers: {}\n---\nservers: {}\n", 2, "another document"),
        ("servers:\n  a:\n\n    command: [x\x00]\n", 4, "unacceptable character"),
        # libyaml refuses it; PyYAML's parser, asked to explain, fails worse (a ValueError).
        ('servers:\n  a:\n    command: "\\U00110000"\n', 3, "escape"),
    ],
)
def test_broken_yaml(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = write(tmp_path, "mcp-lifecycle.yaml", text)
    exc = refused(path)
    assert_names(exc, path, line, None)
    assert "not valid YAML" in exc.message
    assert problem in exc.message


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('{\n  "mcpServers": {\n    "a": {"command": "x" "args": []}\n  }\n}\n', 3, "','"),
        ('{\n  "mcpServers": {\n    "a": {"command": "x"}\n  }\n', 5, "Expecting ','"),
        ('{\n  "mcpServers": {\n    "a": {"command": "x\ny"}\n  }\n}\n', 3, "control character"),
        ('{\n  "mcpServers": {}\n}\n}\n', 4, "Extra data"),
    ],
)
def test_broken_json(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = write(tmp_path, ".mcp.json", text)
    exc = refused(path)
    assert_names(exc, path, line, None)
    assert "not valid JSON" in exc.message
    assert problem in exc.message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(b"servers:\n  a:\n    command: [caf\xe9]\n")
    exc = refused(path)
    assert_names(exc, path, 3, None)
    assert "not UTF-8" in exc.message


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000,
        "{" * 10_000,
        "a: " * 10_000,
        "servers: &a\n  b: *a\n",
        "x: &a {y: *a}\nservers: {}\n",
    ],
)
def test_deep_or_recursive_documents_are_refused_not_raised(tmp_path: Path, text: str) -> None:
    for name in ("f.yaml", "f.json"):
        refused(write(tmp_path, name, text))


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ("command: [x]\n    transport: stdio\n    port: 0", "port", "between 1 and 65535"),
        ("command: [x]\n    transport: stdio\n    port: 65536", "port", "between 1 and 65535"),
        ("command: [x]\n    transport: stdio\n    port: '80'", "port", "must be a number"),
        ("command: [x]\n    transport: stdio\n    port: true", "port", "must be a number"),
        ("command: [x]\n    transport: stdio\n    port: 8.5", "port", "must be a number"),
        ("command: [x]\n    transport: grpc", "transport", "stdio or http"),
        ("command: [x]\n    url: http://h:1/m\n    restart: sometimes", "restart", "never"),
        ("command: [x]\n    url: ftp://h/m", "url", "http://HOST:PORT/PATH"),
        ("command: [x]\n    url: http:///m", "url", "http://HOST:PORT/PATH"),
        ("command: [x]\n    url: http://h:99999/m", "url", "is not valid"),
        ("command: [x]\n    url: 'http://[::1/m'", "url", "is not valid"),
        ("command: [x]\n    url: [http://h/m]", "url", "must be a string"),
        ("command: []\n    transport: stdio", "command", "empty"),
        ("command: ''\n    transport: stdio", "command", "empty"),
        ("command: ['', a]\n    transport: stdio", "command", "empty"),
        ("command: [x, 1]\n    transport: stdio", "command", "list of strings"),
        ("command: {a: b}\n    transport: stdio", "command", "list of strings"),
        ('command: "x \'unclosed"\n    transport: stdio', "command", "cannot be split"),
        ('command: ["x\\0y"]\n    transport: stdio', "command", "NUL"),
        ("command: [x]\n    transport: stdio\n    env: [A]", "env", "map names"),
        ("command: [x]\n    transport: stdio\n    env: {A: [1]}", "env", "string or a number"),
        ("command: [x]\n    transport: stdio\n    env: {A: null}", "env", "string or a number"),
        ("command: [x]\n    transport: stdio\n    env: {A: !!binary aGk=}", "env", "string or"),
        ("command: [x]\n    transport: stdio\n    env: {'A=B': c}", "env", "not a variable"),
        ("command: [x]\n    transport: stdio\n    env: {'': c}", "env", "not a variable"),
        ('command: [x]\n    transport: stdio\n    env: {A: "\\0"}', "env", "NUL"),
        ("command: [x]\n    transport: stdio\n    cwd: 5", "cwd", "must be a path"),
        ('command: [x]\n    transport: stdio\n    cwd: "a\\0"', "cwd", "must be a path"),
        ("command: [x]\n    transport: stdio\n    url: http://h:1/m", "url", "not a url"),
        ("url: http://h:1/m\n    transport: stdio", "transport", "needs a command"),
        ("command: [x]\n    url: http://h:1/m\n    port: 5", "port", "in its url"),
        ("command: [x]", "command", "say how clients reach it"),
        ("command: [x]\n    transport: http", "command", "say how clients reach it"),
        ("command: [x]\n    url: http://h:1/m\n    disabled: true", "disabled", "unknown key"),
    ],
)
def test_a_bad_value_is_refused_at_its_line(
    tmp_path: Path, body: str, key: str, problem: str
) -> None:
    text = f"servers:\n  ok: {{url: 'http://h:7/m'}}\n  bad:\n    {body}\n"
    path = write(tmp_path, "mcp-lifecycle.yaml", text)
    exc = refused(path)
    assert_names(exc, path, line_of(text, f"    {key}:"), "bad")
    assert problem in exc.message


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ('"command": "x", "type": "sse"', "type", "SSE servers are not supported"),
        ('"command": "x", "type": "carrier-pigeon"', "type", "unknown type"),
        ('"command": "x", "args": "--flag"', "args", "list of strings"),
        ('"command": "x", "args": [1]', "args", "list of strings"),
        ('"command": ["x", "y"]', "command", "program name"),
        ('"command": "  "', "command", "program name"),
        ('"command": "x", "envFile": ".env"', "envFile", "unknown key"),
    ],
)
def test_a_bad_client_entry_is_refused_at_its_line(
    tmp_path: Path, body: str, key: str, problem: str
) -> None:
    text = f'{{\n  "mcpServers": {{\n    "bad": {{\n      {body}\n    }}\n  }}\n}}\n'
    path = write(tmp_path, ".mcp.json", text)
    exc = refused(path)
    assert_names(exc, path, 4, "bad")
    assert f'"{key}"' in text
    assert problem in exc.message


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("f.yaml", "", "declares no servers"),
        ("f.yaml", "# only a comment\n", "declares no servers"),
        ("f.yaml", "other: 1\n", "declares no servers"),
        ("f.yaml", "- servers\n", "must be a mapping"),
        ("f.json", '"servers"', "must be a mapping"),
        ("f.yaml", "servers:\n  a: [command, x]\n", "must be a mapping (command:"),
        ("f.yaml", "servers:\n  a:\n", "must be a mapping (command:"),
    ],
)
def test_a_file_that_declares_no_servers(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    exc = refused(write(tmp_path, name, text))
    assert problem in exc.message


def test_servers_that_are_not_a_mapping_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", "# fleet\n\nservers:\n  - a\n  - b\n")
    exc = refused(path)
    assert_names(exc, path, 3, None)
    assert "must map names to servers" in exc.message


def test_a_folder_is_not_a_fleet_file(tmp_path: Path) -> None:
    exc = refused(tmp_path)
    assert exc.message.startswith(f"cannot read {tmp_path}")


# -- properties --------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True)
# "${" starts a variable in a client's config (tested on its own above).
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12).filter(
    lambda text: "${" not in text
)
PROGRAM = TEXT.filter(lambda text: text.strip() != "")
ENV_NAMES = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00="), min_size=1, max_size=8
)
KINDS: tuple[Kind, ...] = ("stdio", "http", "remote")
ENV = st.dictionaries(ENV_NAMES, st.one_of(TEXT, st.integers(), st.booleans()), max_size=3)


def as_env(values: dict[str, str | int | bool]) -> dict[str, str]:
    return {
        key: (str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in values.items()
    }


@dataclass(frozen=True)
class Declared:
    """One generated server, and what reading it back must give."""

    name: str
    kind: Kind
    command: list[str]
    env: dict[str, str | int | bool]
    port: int | None
    url: str | None
    restart: str

    def fleet_body(self) -> dict[str, Any]:
        """As `mcp-lifecycle.yaml` writes it."""
        body: dict[str, Any] = {"restart": self.restart}
        if self.command:
            body["command"] = self.command
        if self.url is not None:
            body["url"] = self.url
        if self.kind == "stdio":
            body["transport"] = "stdio"
            if self.port is not None:
                body["port"] = self.port
        if self.env:
            body["env"] = self.env
        return body

    def client_body(self, typed: bool) -> dict[str, Any]:
        """As a client config writes it (`type` as VS Code does, when `typed`)."""
        body: dict[str, Any] = {"restart": self.restart}
        if typed:
            body["type"] = "stdio" if self.kind == "stdio" else "http"
        if self.command:
            body["command"] = self.command[0]
            body["args"] = self.command[1:]
        if self.url is not None:
            body["url"] = self.url
        if self.port is not None and self.kind == "stdio":
            body["port"] = self.port
        if self.env:
            body["env"] = self.env
        return body

    def expected(self, folder: Path) -> ServerEntry:
        return ServerEntry(
            name=self.name,
            kind=self.kind,
            line=0,
            command=tuple(self.command),
            env=as_env(self.env),
            cwd=None if self.kind == "remote" else folder.resolve(),
            url=self.url,
            port=self.port,
            restart=self.restart,
        )


@st.composite
def fleets(draw: st.DrawFn) -> list[Declared]:
    names = draw(st.lists(NAMES, unique=True, max_size=5))
    ports = draw(
        st.lists(st.integers(1, 65535), unique=True, min_size=len(names), max_size=len(names))
    )
    declared = []
    for name, port in zip(names, ports, strict=True):
        kind = draw(st.sampled_from(KINDS))
        command = [draw(PROGRAM), *draw(st.lists(TEXT, max_size=4))]
        if kind == "stdio":
            url, bridge_port = None, draw(st.sampled_from([None, port]))
        else:
            host = draw(st.sampled_from(["127.0.0.1", "localhost", "[::1]", "example.com"]))
            url, bridge_port = (
                f"http://{host}:{port}/{draw(st.from_regex(r'[a-z/]{0,8}', fullmatch=True))}",
                port,
            )
        declared.append(
            Declared(
                name=name,
                kind=kind,
                command=[] if kind == "remote" else command,
                env=draw(ENV),
                port=bridge_port,
                url=url,
                restart=draw(st.sampled_from(RESTART_POLICIES)),
            )
        )
    return declared


def check_read_back(path: Path, declared: list[Declared]) -> None:
    """`read_fleet` gives what was declared, in order, each at the line of its name."""
    fleet = read_fleet(path)
    assert list(fleet.servers) == [d.name for d in declared]
    lines = path.read_text(encoding="utf-8").split("\n")
    for wanted in declared:
        entry = fleet.servers[wanted.name]
        assert replace(entry, line=0) == wanted.expected(path.parent)
        assert re.match(rf"""\s*["']?{re.escape(wanted.name)}["']?:""", lines[entry.line - 1])
        assert ServerEntry.from_json(entry.to_json()) == entry


@PROPERTY
@given(declared=fleets())
def test_any_valid_fleet_reads_back_from_yaml(tmp_path: Path, declared: list[Declared]) -> None:
    document = {"servers": {d.name: d.fleet_body() for d in declared}}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=False)
    check_read_back(write(tmp_path, "mcp-lifecycle.yaml", text), declared)


@PROPERTY
@given(declared=fleets(), ascii_only=st.booleans())
def test_any_valid_fleet_reads_back_from_json(
    tmp_path: Path, declared: list[Declared], ascii_only: bool
) -> None:
    document = {"servers": {d.name: d.fleet_body() for d in declared}}
    text = json.dumps(document, indent=2, ensure_ascii=ascii_only)
    check_read_back(write(tmp_path, "mcp-lifecycle.yaml", text), declared)


@PROPERTY
@given(
    declared=fleets(),
    vscode=st.booleans(),
    ascii_only=st.booleans(),
    disabled=st.lists(NAMES, max_size=2),
)
def test_any_valid_client_config_reads_back(
    tmp_path: Path,
    declared: list[Declared],
    vscode: bool,
    ascii_only: bool,
    disabled: list[str],
) -> None:
    servers = {d.name: d.client_body(typed=vscode) for d in declared}
    for name in disabled:
        servers.setdefault(name, {"command": "never", "disabled": True})
    document: dict[str, Any] = {"servers" if vscode else "mcpServers": servers}
    if vscode:
        document["inputs"] = {}
    text = json.dumps(document, indent=2, ensure_ascii=ascii_only)
    name = ".vscode-mcp.json" if vscode else ".mcp.json"
    check_read_back(write(tmp_path, name, text), declared)


ENTRIES = st.builds(
    ServerEntry,
    name=st.text(),
    kind=st.sampled_from(KINDS),
    line=st.integers(0, 10**6),
    command=st.lists(st.text()).map(tuple),
    env=st.dictionaries(st.text(), st.text()),
    cwd=st.none() | st.text(min_size=1).map(Path),
    url=st.none() | st.text(),
    port=st.none() | st.integers(1, 65535),
    restart=st.sampled_from(RESTART_POLICIES),
)


@PROPERTY
@given(entry=ENTRIES)
def test_to_json_and_from_json_round_trip(entry: ServerEntry) -> None:
    text = entry.to_json()
    assert text.isascii()  # it travels in an environment variable
    assert "\x00" not in text
    again = ServerEntry.from_json(text)
    assert again == entry
    assert again.to_json() == text


FILE_NAMES = st.sampled_from(["mcp-lifecycle.yaml", ".mcp.json", "mcp.json", "fleet.yml"])


def read_or_refuse(path: Path) -> None:
    """Either a fleet or a ConfigurationError naming the file: never another exception."""
    outcome: Fleet | ConfigurationError
    try:
        outcome = read_fleet(path)
    except ConfigurationError as exc:
        outcome = exc
    if isinstance(outcome, ConfigurationError):
        assert outcome.exit_code == ExitCode.CONFIGURATION_ERROR
        assert str(path) in outcome.message
    else:
        for entry in outcome.servers.values():
            assert ServerEntry.from_json(entry.to_json()) == entry


@PROPERTY
@given(content=st.text() | st.binary(), name=FILE_NAMES)
def test_any_text_or_bytes_is_read_or_refused(
    tmp_path: Path, content: str | bytes, name: str
) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    read_or_refuse(path)


SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
KEYS = st.sampled_from(
    ["command", "args", "env", "cwd", "url", "transport", "port", "restart", "type", "disabled"]
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "command": st.sampled_from(["srv", "a b 'c d'", "x '", ""]) | st.lists(st.text(max_size=5)),
    "args": st.lists(st.text(max_size=5), max_size=3),
    "url": st.sampled_from(["http://127.0.0.1:9/m", "https://h/m", "http://[::1", "ftp://x"]),
    "transport": st.sampled_from(["stdio", "http", "ws"]),
    "type": st.sampled_from(["stdio", "http", "streamable-http", "sse", "x"]),
    "port": st.integers(-1, 70000),
    "restart": st.sampled_from([*RESTART_POLICIES, "maybe"]),
    "cwd": st.sampled_from([".", "..", "missing", "/", "x" * 300]),
    "env": st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
    "disabled": st.booleans(),
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A server's body, mostly of values that nearly make sense."""
    keys = draw(st.lists(KEYS, unique=True, max_size=6))
    return {key: draw(PLAUSIBLE[key] | VALUES) for key in keys}


@PROPERTY
@given(
    servers=st.dictionaries(st.one_of(NAMES, st.text(max_size=8)), bodies() | VALUES, max_size=4),
    client_key=st.sampled_from(["servers", "mcpServers"]),
    name=FILE_NAMES,
    as_yaml=st.booleans(),
)
def test_any_document_of_servers_is_read_or_refused(
    tmp_path: Path, servers: dict[str, Any], client_key: str, name: str, as_yaml: bool
) -> None:
    document = {client_key: servers}
    text = yaml.safe_dump(document) if as_yaml else json.dumps(document)
    read_or_refuse(write(tmp_path, name, text))


# -- variables, as the clients expand them; URLs of servers we run -------------------------------


def test_client_variables_are_expanded_as_the_client_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", "sk-123")
    monkeypatch.setenv("TOOL_HOME", "/opt/tool")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    vscode = tmp_path / ".vscode"
    vscode.mkdir()
    config = {
        "servers": {
            "s": {
                "type": "stdio",
                "command": "${env:TOOL_HOME}/bin/server",
                "args": ["--root", "${workspaceFolder}", "--mode=${UNSET_ONE:-fast}"],
                "env": {"KEY": "${API_KEY}", "PLAIN": "no $dollar {braces}"},
            }
        }
    }
    path = write(vscode, "mcp.json", json.dumps(config))
    entry = read_fleet(path).servers["s"]
    assert entry.command == (
        "/opt/tool/bin/server",
        "--root",
        str(tmp_path.resolve()),
        "--mode=fast",
    )
    assert entry.env == {"KEY": "sk-123", "PLAIN": "no $dollar {braces}"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("${UNSET_ONE}", "${UNSET_ONE} is not set in the environment"),
        ("${input:apiKey}", "${input:apiKey} asks the user for a value"),
        ("${not a name}", "cannot expand ${not a name}"),
    ],
)
def test_a_variable_that_cannot_be_expanded_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.delenv("UNSET_ONE", raising=False)
    text = (
        '{\n  "mcpServers": {\n    "s": {\n      "command": "srv",\n'
        f'      "env": {{"KEY": "{value}"}}\n    }}\n  }}\n}}\n'
    )
    path = write(tmp_path, ".mcp.json", text)
    exc = refused(path)
    assert_names(exc, path, 5, "s")
    assert problem in exc.message


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8443/mcp", "http://127.0.0.1:8801/mcp?key=1", "http://h:1/mcp#x"]
)
def test_a_server_we_run_is_reached_over_plain_http(tmp_path: Path, url: str) -> None:
    """https://localhost/mcp became http://localhost:443/mcp in `status`; a query was dropped."""
    path = write(
        tmp_path, "mcp-lifecycle.yaml", f"servers:\n  s:\n    command: [srv]\n    url: {url}\n"
    )
    exc = refused(path)
    assert_names(exc, path, 4, "s")
    assert "no https, query or fragment" in exc.message


def test_a_server_that_runs_elsewhere_may_be_https(tmp_path: Path) -> None:
    path = write(
        tmp_path, "mcp-lifecycle.yaml", "servers:\n  far:\n    url: https://mcp.example/mcp\n"
    )
    assert read_fleet(path).servers["far"].kind == "remote"
