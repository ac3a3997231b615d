"""MCPServerSettings and its layered sources.

Priority: CLI flags (init values) > environment `MCP_SERVER_*` > `settings/local.yaml` >
`settings/{server_name}.yaml` > values the author passed in code > defaults.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mcp_lifecycle.errors import ConfigurationError
from mcp_lifecycle.files.paths import default_cache_root, server_name_problem
from mcp_lifecycle.logs import LOG_LEVELS
from mcp_lifecycle.settings.fields import default
from mcp_lifecycle.settings.sources import (
    ENV_PREFIX,
    SHARED_FILE,
    Source,
    YamlFile,
    env_prefixes,
    source_of,
    yaml_files_for,
)

logger = logging.getLogger(__name__)

# Which YAML values, code defaults and variable prefixes apply to the settings being built
# right now; context variables because pydantic-settings builds sources from the class.
_yaml_values: ContextVar[tuple[dict[str, Any], ...]] = ContextVar("_yaml_values", default=())
_code_defaults: ContextVar[dict[str, Any] | None] = ContextVar("_code_defaults", default=None)
_own_prefix: ContextVar[str | None] = ContextVar("_own_prefix", default=None)


_BOUNDS: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
    ("ge", lambda value, limit: value >= limit, "greater than or equal to"),
    ("gt", lambda value, limit: value > limit, "greater than"),
    ("le", lambda value, limit: value <= limit, "less than or equal to"),
    ("lt", lambda value, limit: value < limit, "less than"),
)


class MCPServerSettings(BaseSettings):
    """Settings every server has. Subclass it to add fields; they layer the same way."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, frozen=False
    )

    server_name: str = "mcp-server"
    cache_root: Path | None = Field(
        default=None, description="where PID, lock, snapshot and log live (default: per user)"
    )
    health_ttl_seconds: float = Field(default=default("health_ttl_seconds"), ge=1.0)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    log_level: str = "INFO"
    log_file: Path | None = None
    json_logs: bool = False
    startup_timeout_seconds: float = Field(default=default("startup_timeout_seconds"), gt=0)
    stop_timeout_seconds: float = Field(default=default("stop_timeout_seconds"), gt=0)
    stale_pid_action: Literal["auto_clean", "refuse"] = default("stale_pid_action")
    transport: Literal["http", "stdio"] | None = Field(
        default=None,
        description="stdio: the server speaks MCP on stdin/stdout and is never detached",
    )
    host: str = default("host")
    port: int | None = Field(default=None, ge=1, le=65535)
    http_path: str = "/mcp"
    auth: Literal["token", "none"] = Field(
        default="token",
        description="token: HTTP clients need the server's bearer token; none: anyone who "
        "can connect may use it (behind a gateway that authenticates, or a NetworkPolicy)",
    )
    token_file: Path | None = Field(
        default=None,
        description="read the bearer token from this file (a mounted Kubernetes Secret) "
        "instead of keeping one in the cache root",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names (host or host:port) a listener beyond loopback answers to",
    )
    probe_timeout_seconds: float = Field(default=default("probe_timeout_seconds"), gt=0)
    log_max_bytes: int = Field(default=default("log_max_bytes"), ge=1024)
    log_backup_count: int = Field(default=default("log_backup_count"), ge=0)
    restart_policy: Literal["never", "on-failure", "always"] = Field(
        default="never",
        description="bring a detached server back when it exits: on-failure (non-zero exit or "
        "a signal) or always; under systemd or Kubernetes, let them restart it instead",
    )
    restart_max_retries: int = Field(
        default=5, ge=0, description="restarts within restart_window_seconds before giving up"
    )
    restart_window_seconds: float = Field(default=300.0, gt=0)
    restart_backoff_seconds: float = Field(
        default=1.0, gt=0, description="the first delay before a restart, doubling up to 30 s"
    )
    restart_max_memory_mb: int | None = Field(
        default=None,
        gt=0,
        description="restart the server, gracefully, when its memory (RSS) stays above this",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in LOG_LEVELS:
            return value.upper()
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")

    @field_validator("server_name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        problem = server_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator(
        "health_ttl_seconds",
        "heartbeat_seconds",
        "startup_timeout_seconds",
        "stop_timeout_seconds",
        "port",
        "probe_timeout_seconds",
        "log_max_bytes",
        "log_backup_count",
        "restart_max_retries",
        "restart_window_seconds",
        "restart_backoff_seconds",
        "restart_max_memory_mb",
        mode="after",
    )
    @classmethod
    def _library_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        """The lifecycle's own bounds hold even where a subclass redeclares the field
        (`port: int | None = 8765` would otherwise drop 1-65535): validators are inherited,
        a field's constraints are not."""
        if value is None or info.field_name is None:
            return value
        for bound in MCPServerSettings.model_fields[info.field_name].metadata:
            for attribute, holds, words in _BOUNDS:
                limit = getattr(bound, attribute, None)
                if limit is not None and not holds(value, limit):
                    raise ValueError(f"Input should be {words} {limit}")
        return value

    @field_validator("cache_root", "log_file", "token_file", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.abspath(value.expanduser()))

    @field_validator("http_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("heartbeat_seconds")
    @classmethod
    def _heartbeat_under_ttl(cls, value: float | None, info: ValidationInfo) -> float | None:
        ttl = info.data.get("health_ttl_seconds")
        # At most half the TTL, so one late heartbeat never makes a live server look stale.
        if value is not None and ttl is not None and value > ttl / 2:
            raise ValueError(
                f"must be at most half of health_ttl_seconds ({ttl:g}), so one late "
                "heartbeat does not make a live server look stale"
            )
        return value

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
        # The files were read (and checked) once already: their values go in as they are.
        yaml_sources = [
            InitSettingsSource(settings_cls, init_kwargs=values) for values in _yaml_values.get()
        ]
        code = InitSettingsSource(settings_cls, init_kwargs=dict(_code_defaults.get() or {}))
        own = _own_prefix.get()
        own_env = [EnvSettingsSource(settings_cls, env_prefix=own)] if own else []
        return (init_settings, *own_env, env_settings, *yaml_sources, code)


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings together with the layers they were resolved from."""

    settings: MCPServerSettings
    flags: dict[str, str]
    yaml_files: tuple[YamlFile, ...]
    code_defaults: dict[str, Any]
    prefixes: tuple[str, ...] = (ENV_PREFIX,)

    def source(self, name: str) -> Source:
        return source_of(name, self.flags, self.yaml_files, self.code_defaults, self.prefixes)


def load_settings(
    settings_cls: type[MCPServerSettings],
    server_name: str,
    overrides: dict[str, Any] | None = None,
    code_defaults: dict[str, Any] | None = None,
    flag_names: dict[str, str] | None = None,
) -> MCPServerSettings:
    """Resolve every layer; ConfigurationError names the field, the bad value and its source."""
    return resolve_settings(
        settings_cls, server_name, overrides, code_defaults, flag_names
    ).settings


def resolve_settings(
    settings_cls: type[MCPServerSettings],
    server_name: str,
    overrides: dict[str, Any] | None = None,
    code_defaults: dict[str, Any] | None = None,
    flag_names: dict[str, str] | None = None,
    *,
    env_prefix: str | None = None,
    config_file: Path | None = None,
) -> ResolvedSettings:
    """Flags > `env_prefix` variables > MCP_SERVER_* > settings/local.yaml > the server's own
    file (`config_file`, or settings/<server>.yaml) > code > defaults."""
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    flags = {name: (flag_names or {}).get(name, f"--set {name}") for name in values}
    code = dict(code_defaults or {})
    yaml_files = tuple(
        _only_ours(YamlFile.read(path), settings_cls, server_name)
        for path in yaml_files_for(server_name, config_file)
    )
    prefixes = env_prefixes(env_prefix)
    tokens = (
        _yaml_values.set(tuple(f.values for f in yaml_files)),
        _code_defaults.set(code),
        _own_prefix.set(env_prefix if len(prefixes) > 1 else None),
    )
    try:
        settings = settings_cls(**{**values, "server_name": server_name})
    except ValidationError as exc:
        raise ConfigurationError(
            _describe(exc, settings_cls, flags, yaml_files, code, prefixes),
            hint="fix the value, or run `config` to see where each setting comes from",
        ) from None
    finally:
        _yaml_values.reset(tokens[0])
        _code_defaults.reset(tokens[1])
        _own_prefix.reset(tokens[2])
    return ResolvedSettings(settings, flags, yaml_files, code, prefixes)


def _only_ours(
    yaml_file: YamlFile, settings_cls: type[MCPServerSettings], server_name: str
) -> YamlFile:
    """The shared settings/local.yaml may hold settings of other servers started in the same
    folder: here they are ignored, with a warning, instead of breaking this server."""
    if yaml_file.path != SHARED_FILE:
        return yaml_file
    foreign = [key for key in yaml_file.values if key not in settings_cls.model_fields]
    for key in foreign:
        close = difflib.get_close_matches(key, list(settings_cls.model_fields), n=1)
        logger.warning(
            "%s: %r is not a setting of %s; ignored here (another server's?%s)",
            yaml_file.source(key),
            key,
            server_name,
            f" or did you mean {close[0]!r}" if close else "",
        )
    if not foreign:
        return yaml_file
    kept = {k: v for k, v in yaml_file.values.items() if k not in foreign}
    return YamlFile(yaml_file.path, kept, yaml_file.lines)


def _describe(
    exc: ValidationError,
    settings_cls: type[MCPServerSettings],
    flags: dict[str, str],
    yaml_files: tuple[YamlFile, ...],
    code: dict[str, Any],
    prefixes: tuple[str, ...],
) -> str:
    messages = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "settings"
        where = source_of(name, flags, yaml_files, code, prefixes)
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, list(settings_cls.model_fields), n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            messages.append(f"unknown setting {name!r} in {where}{suggestion}")
            continue
        value = error.get("input")
        message = str(error["msg"]).removeprefix("Value error, ")
        messages.append(f"invalid setting {name}={value!r} from {where}: {message}")
    return "; ".join(messages)
