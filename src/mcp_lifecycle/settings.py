"""MCPServerSettings and its layered sources.

Priority: CLI flags (init values) > environment `MCP_SERVER_*` > `settings/local.yaml` >
`settings/{server_name}.yaml` > values the author passed in code > defaults.
"""

from __future__ import annotations

import difflib
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from mcp_lifecycle.errors import ConfigurationError

ENV_PREFIX = "MCP_SERVER_"
SETTINGS_DIR = Path("settings")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

# Which YAML files and code defaults apply to the settings being built right now; a context
# variable because pydantic-settings builds sources from the class, not the instance.
_yaml_files: ContextVar[tuple[Path, ...]] = ContextVar("_yaml_files", default=())
_code_defaults: ContextVar[dict[str, Any] | None] = ContextVar("_code_defaults", default=None)


def default_cache_root(server_name: str) -> Path:
    from platformdirs import user_state_path

    return user_state_path("mcp-lifecycle") / server_name


class MCPServerSettings(BaseSettings):
    """Settings every server has. Subclass it to add fields; they layer the same way."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, frozen=False
    )

    server_name: str = Field(default="mcp-server", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    cache_root: Path | None = Field(
        default=None, description="where PID, lock, snapshot and log live (default: per user)"
    )
    health_ttl_seconds: float = Field(default=60.0, ge=1.0)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    log_level: str = "INFO"
    log_file: Path | None = None
    json_logs: bool = False
    startup_timeout_seconds: float = Field(default=30.0, gt=0)
    stop_timeout_seconds: float = Field(default=10.0, gt=0)
    stale_pid_action: Literal["auto_clean", "refuse"] = "auto_clean"
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    http_path: str = "/mcp"
    probe_timeout_seconds: float = Field(default=5.0, gt=0)
    log_max_bytes: int = Field(default=10_485_760, ge=1024)
    log_backup_count: int = Field(default=3, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in LOG_LEVELS:
            return value.upper()
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")

    @field_validator("cache_root", "log_file", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.abspath(value.expanduser()))

    @field_validator("http_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @model_validator(mode="after")
    def _heartbeat_under_ttl(self) -> MCPServerSettings:
        if self.heartbeat_seconds is not None and self.heartbeat_seconds >= self.health_ttl_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds:g}) must be shorter than "
                f"health_ttl_seconds ({self.health_ttl_seconds:g})"
            )
        return self

    @property
    def resolved_cache_root(self) -> Path:
        return self.cache_root or default_cache_root(self.server_name)

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.health_ttl_seconds / 4

    @property
    def url(self) -> str | None:
        """The MCP endpoint a client should use, when the server serves HTTP."""
        if self.port is None:
            return None
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.http_path}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_sources = [
            YamlConfigSettingsSource(settings_cls, yaml_file=path) for path in _yaml_files.get()
        ]
        code = InitSettingsSource(settings_cls, init_kwargs=dict(_code_defaults.get() or {}))
        return (init_settings, env_settings, *yaml_sources, code)


def yaml_files_for(server_name: str, settings_dir: Path = SETTINGS_DIR) -> tuple[Path, ...]:
    """Highest priority first."""
    return (settings_dir / "local.yaml", settings_dir / f"{server_name}.yaml")


def load_settings(
    settings_cls: type[MCPServerSettings],
    server_name: str,
    overrides: dict[str, Any] | None = None,
    code_defaults: dict[str, Any] | None = None,
) -> MCPServerSettings:
    """Resolve every layer; ConfigurationError names the field, the bad value and its source."""
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    yaml_files = yaml_files_for(server_name)
    yaml_token = _yaml_files.set(yaml_files)
    code_token = _code_defaults.set(dict(code_defaults or {}))
    try:
        return settings_cls(**{**flags, "server_name": server_name})
    except ValidationError as exc:
        raise ConfigurationError(
            _describe(exc, settings_cls, flags, yaml_files),
            hint="fix the value, or run `config` to see where each setting comes from",
        ) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # unreadable or malformed YAML
        raise ConfigurationError(f"cannot read settings: {exc}") from None
    finally:
        _yaml_files.reset(yaml_token)
        _code_defaults.reset(code_token)


def _describe(
    exc: ValidationError,
    settings_cls: type[MCPServerSettings],
    flags: dict[str, Any],
    yaml_files: tuple[Path, ...],
) -> str:
    messages = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, list(settings_cls.model_fields), n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            messages.append(
                f"unknown setting {name!r} ({_source(name, flags, yaml_files)}){suggestion}"
            )
            continue
        where = _source(name, flags, yaml_files) if name else "settings"
        value = error.get("input")
        shown = f"={value!r}" if name and not isinstance(value, dict) else ""
        messages.append(f"invalid setting {name or '(model)'}{shown} from {where}: {error['msg']}")
    return "; ".join(messages)


def _source(name: str, flags: dict[str, Any], yaml_files: tuple[Path, ...]) -> str:
    if name in flags:
        return "a command-line flag"
    variable = f"{ENV_PREFIX}{name.upper()}"
    if variable in os.environ:
        return f"environment variable {variable}"
    for path in yaml_files:
        if _yaml_has_key(path, name):
            return str(path)
    return "the defaults"


def _yaml_has_key(path: Path, name: str) -> bool:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and name in data
