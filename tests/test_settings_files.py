from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_lifecycle import MCPServerSettings, validate_cache_ownership
from mcp_lifecycle.errors import ConfigurationError, InsecurePathError
from mcp_lifecycle.files.private import ensure_cache_root
from mcp_lifecycle.settings.model import load_settings


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("MCP_SERVER_"):
            monkeypatch.delenv(key)
    (tmp_path / "settings").mkdir()
    return tmp_path


def test_defaults(in_tmp: Path) -> None:
    s = load_settings(MCPServerSettings, "srv")
    assert s.server_name == "srv"
    assert s.health_ttl_seconds == 60
    assert s.heartbeat_interval == 15
    assert s.stale_pid_action == "auto_clean"
    assert s.url is None
    assert s.resolved_cache_root.is_absolute()
    assert s.resolved_cache_root.name == "srv"


def test_layers_in_order(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_dir = in_tmp / "settings"
    code = {"health_ttl_seconds": 70.0}
    assert load_settings(MCPServerSettings, "srv", code_defaults=code).health_ttl_seconds == 70
    (settings_dir / "srv.yaml").write_text("health_ttl_seconds: 80\n")
    assert load_settings(MCPServerSettings, "srv", code_defaults=code).health_ttl_seconds == 80
    (settings_dir / "local.yaml").write_text("health_ttl_seconds: 90\n")
    assert load_settings(MCPServerSettings, "srv").health_ttl_seconds == 90
    monkeypatch.setenv("MCP_SERVER_HEALTH_TTL_SECONDS", "100")
    assert load_settings(MCPServerSettings, "srv").health_ttl_seconds == 100
    flags = {"health_ttl_seconds": 110.0}
    assert load_settings(MCPServerSettings, "srv", flags).health_ttl_seconds == 110


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "code": st.integers(1, 1000),
            "name_yaml": st.integers(1, 1000),
            "local_yaml": st.integers(1, 1000),
            "env": st.integers(1, 1000),
            "flag": st.integers(1, 1000),
        },
    )
)
@settings(max_examples=40, deadline=None)
def test_highest_present_layer_wins(layers: dict[str, int]) -> None:
    import tempfile

    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            Path("settings").mkdir()
            if "name_yaml" in layers:
                Path("settings/srv.yaml").write_text(f"health_ttl_seconds: {layers['name_yaml']}\n")
            if "local_yaml" in layers:
                Path("settings/local.yaml").write_text(
                    f"health_ttl_seconds: {layers['local_yaml']}\n"
                )
            os.environ.pop("MCP_SERVER_HEALTH_TTL_SECONDS", None)
            if "env" in layers:
                os.environ["MCP_SERVER_HEALTH_TTL_SECONDS"] = str(layers["env"])
            result = load_settings(
                MCPServerSettings,
                "srv",
                {"health_ttl_seconds": layers.get("flag")},
                {"health_ttl_seconds": layers["code"]} if "code" in layers else None,
            )
        finally:
            os.environ.pop("MCP_SERVER_HEALTH_TTL_SECONDS", None)
            os.chdir(old_cwd)
    expected = 60
    for layer in ("code", "name_yaml", "local_yaml", "env", "flag"):
        if layer in layers:
            expected = layers[layer]
    assert result.health_ttl_seconds == expected


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("health_ttl_seconds: 0\n", "health_ttl_seconds=0 from settings/srv.yaml line 1"),
        ("# comment\nport: 0\n", "port=0 from settings/srv.yaml line 2"),
        ("log_level: LOUD\n", "log_level='LOUD'"),
        ("port: 70000\n", "port=70000"),
        ("stale_pid_action: sometimes\n", "stale_pid_action"),
        ("health_ttl_secs: 5\n", "did you mean 'health_ttl_seconds'?"),
        ("heartbeat_seconds: 31\n", "must be at most half of health_ttl_seconds"),
        ("http_path: mcp\n", "must start with '/'"),
        ("port: 1\nhost: [\n", "settings/srv.yaml line 3: not valid YAML"),
        ("- 1\n- 2\n", "must hold `setting: value` lines, not a list"),
        ("port: *nope\n", "found undefined alias 'nope'"),  # PyYAML's words, not libyaml's
        ("port: 1\nhost: a\x07\n", "settings/srv.yaml line 2: not valid YAML"),  # a bad character
        ("log_level: 2024-02-30\n", "settings/srv.yaml line 1: not valid YAML (day is out"),
        ('log_level: "\\U00110000"\n', "settings/srv.yaml line 1: not valid YAML"),
        ("port: " + "[" * 10_000, "settings/srv.yaml: nested too deeply to read"),
        ("".join(f"{'  ' * i}k{i}:\n" for i in range(3000)), "nested too deeply to read"),
    ],
)
def test_bad_values_name_field_value_and_source(in_tmp: Path, yaml_text: str, message: str) -> None:
    (in_tmp / "settings" / "srv.yaml").write_text(yaml_text)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(MCPServerSettings, "srv")
    assert message in caught.value.message


def test_bad_env_and_flag_name_their_source(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_SERVER_PORT", "nope")
    with pytest.raises(ConfigurationError, match="environment variable MCP_SERVER_PORT"):
        load_settings(MCPServerSettings, "srv")
    monkeypatch.delenv("MCP_SERVER_PORT")
    with pytest.raises(ConfigurationError, match="from flag --set log_level"):
        load_settings(MCPServerSettings, "srv", {"log_level": "LOUD"})
    with pytest.raises(ConfigurationError, match="from flag --log-level"):
        load_settings(
            MCPServerSettings, "srv", {"log_level": "LOUD"}, None, {"log_level": "--log-level"}
        )


def test_subclass_fields_layer_too(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Mine(MCPServerSettings):
        greeting: str = "hi"

    assert load_settings(Mine, "srv").greeting == "hi"  # type: ignore[attr-defined]
    (in_tmp / "settings" / "srv.yaml").write_text("greeting: hello\n")
    assert load_settings(Mine, "srv").greeting == "hello"  # type: ignore[attr-defined]
    monkeypatch.setenv("MCP_SERVER_GREETING", "hey")
    assert load_settings(Mine, "srv").greeting == "hey"  # type: ignore[attr-defined]


def test_url_forms(in_tmp: Path) -> None:
    def url(**values: object) -> str | None:
        return load_settings(MCPServerSettings, "srv", dict(values)).url

    assert url(port=8000) == "http://127.0.0.1:8000/mcp"
    assert url(port=8000, host="0.0.0.0") == "http://127.0.0.1:8000/mcp"
    assert url(port=8000, host="::1", http_path="/x") == "http://[::1]:8000/x"


def test_cache_root_checks(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    assert ensure_cache_root(root) == root
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    validate_cache_ownership(root)
    os.chmod(root, 0o770)
    with pytest.raises(InsecurePathError, match="writable by others") as caught:
        validate_cache_ownership(root)
    assert caught.value.hint == f"run `chmod 700 {root}`"
    os.chmod(root, 0o755)
    validate_cache_ownership(root)  # readable by others is allowed; writable is not
    with pytest.raises(InsecurePathError, match="does not exist"):
        validate_cache_ownership(tmp_path / "missing")
    link = tmp_path / "link"
    link.symlink_to(root)
    with pytest.raises(InsecurePathError, match="symlink"):
        ensure_cache_root(link)
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(InsecurePathError, match="not a directory"):
        validate_cache_ownership(file)


invalid_values = st.sampled_from(
    [
        ("health_ttl_seconds", "0"),
        ("health_ttl_seconds", "-3"),
        ("health_ttl_seconds", "soon"),
        ("port", "0"),
        ("port", "65536"),
        ("port", "http"),
        ("log_level", "LOUD"),
        ("stale_pid_action", "sometimes"),
        ("stop_timeout_seconds", "-1"),
        ("json_logs", "perhaps"),
        ("http_path", "mcp"),
        ("log_max_bytes", "12"),
    ]
)


@given(invalid_values, st.sampled_from(["env", "local", "named", "flag"]))
@settings(max_examples=60, deadline=None)
def test_any_invalid_value_from_any_layer_exits_5_and_touches_nothing(
    bad: tuple[str, str], layer: str
) -> None:
    import tempfile

    from typer.testing import CliRunner

    from mcp_lifecycle import MCPServerCLIFactory

    name, value = bad
    app = MCPServerCLIFactory("srv").create_app()
    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            Path("settings").mkdir()
            env = {"MCP_SERVER_CACHE_ROOT": f"{tmp}/cache"}
            args = ["status"]
            if layer == "env":
                env[f"MCP_SERVER_{name.upper()}"] = value
            elif layer == "flag":
                args = ["--set", f"{name}={value}", "status"]
            else:
                path = Path("settings") / ("local.yaml" if layer == "local" else "srv.yaml")
                path.write_text(f"{name}: {value}\n")
            before = {p: p.read_bytes() for p in Path("settings").iterdir()}
            result = CliRunner().invoke(app, args, env=env)
            after = {p: p.read_bytes() for p in Path("settings").iterdir()}
            cache_created = Path(f"{tmp}/cache").exists()
        finally:
            os.chdir(old_cwd)
    assert result.exit_code == 5, result.output
    assert "Traceback" not in result.output
    assert f"invalid setting {name}=" in result.output
    assert before == after
    assert not cache_created


@given(st.binary(max_size=200))
@settings(max_examples=80, deadline=None)
def test_any_bytes_in_a_settings_file_give_settings_or_a_clean_error(data: bytes) -> None:
    import tempfile

    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            Path("settings").mkdir()
            Path("settings/srv.yaml").write_bytes(data)
            try:
                result = load_settings(MCPServerSettings, "srv")
            except ConfigurationError as exc:
                message = exc.message
                assert message.strip()
            else:
                assert result.server_name == "srv"
        finally:
            os.chdir(old_cwd)


class _Redeclared(MCPServerSettings):
    """The README's pattern: a subclass that redeclares lifecycle fields with plain types."""

    port: int | None = 8765
    health_ttl_seconds: float = 30.0
    log_max_bytes: int = 4096


@pytest.mark.parametrize(
    ("name", "value"),
    [("port", 0), ("port", 65536), ("port", -1), ("health_ttl_seconds", 0.5),
     ("log_max_bytes", 100)],
)  # fmt: skip
def test_a_subclass_keeps_the_librarys_bounds(name: str, value: float) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_Redeclared, "bounded", {name: value})
    assert f"invalid setting {name}=" in caught.value.message


def test_a_subclass_keeps_its_own_defaults_within_bounds() -> None:
    settings = load_settings(_Redeclared, "bounded", {})
    assert settings.port == 8765
    assert load_settings(_Redeclared, "bounded", {"port": 65535}).port == 65535
