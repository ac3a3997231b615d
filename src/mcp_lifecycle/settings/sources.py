"""Where each setting's value comes from: a flag, a variable, a YAML file and line, code, or the
defaults. Used for error messages and by the `config` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from mcp_lifecycle.errors import ConfigurationError

ENV_PREFIX = "MCP_SERVER_"
SETTINGS_DIR = Path("settings")


# Shared by every server started in the working directory: keys of other servers only warn.
SHARED_FILE = SETTINGS_DIR / "local.yaml"


def yaml_files_for(server_name: str, config_file: Path | None = None) -> tuple[Path, ...]:
    """The settings files of a server, highest priority first: the shared `local.yaml`, then
    the server's own (`config_file`, or `settings/<server>.yaml`). Relative ones are none when
    the working directory they are relative to was deleted."""
    own = config_file or SETTINGS_DIR / f"{server_name}.yaml"
    try:
        os.getcwd()
    except FileNotFoundError:
        return tuple(path for path in (own,) if path.is_absolute())
    return (SHARED_FILE, own)


def env_prefixes(own: str | None) -> tuple[str, ...]:
    """The variable prefixes a server reads, highest priority first: its own, then ours."""
    return (own, ENV_PREFIX) if own and own != ENV_PREFIX else (ENV_PREFIX,)


class Source(NamedTuple):
    kind: str  # "flag", "env", "yaml", "code" or "default"
    detail: str  # e.g. "--port", "MCP_SERVER_PORT", "settings/local.yaml line 3"

    def __str__(self) -> str:
        if self.kind == "env":
            return f"environment variable {self.detail}"
        if self.kind == "flag":
            return f"flag {self.detail}"
        return self.detail


DEFAULT = Source("default", "the defaults")
CODE = Source("code", "the server's code")


class YamlFile(NamedTuple):
    """One settings file, read once: its values and the line of each key."""

    path: Path
    values: dict[str, Any]
    lines: dict[str, int]

    @classmethod
    def read(cls, path: Path) -> YamlFile:
        """Missing file: empty. Broken YAML or a non-mapping: ConfigurationError with the line."""
        import yaml

        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path, {}, {})
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from None
        from mcp_lifecycle.files.yaml_text import (
            TooDeep,
            compose_document,
            safe_loader,
            where_and_what,
        )

        try:
            node, values = compose_document(text, safe_loader)
        except TooDeep:
            raise ConfigurationError(
                f"{path}: nested too deeply to read", hint="a settings file is flat: `key: value`"
            ) from None
        except yaml.YAMLError as exc:
            line, problem = where_and_what(exc, text)
            where = f"{path} line {line}" if line else str(path)
            raise ConfigurationError(
                f"{where}: not valid YAML ({problem})", hint="fix the YAML syntax there"
            ) from None
        if values is None:
            return cls(path, {}, {})
        if not isinstance(values, dict) or not isinstance(node, yaml.MappingNode):
            raise ConfigurationError(
                f"{path} must hold `setting: value` lines, not a {type(values).__name__}",
                hint="see the README for an example settings file",
            )
        lines = {
            str(key.value): key.start_mark.line + 1
            for key, _ in node.value
            if isinstance(key, yaml.ScalarNode)
        }
        return cls(path, {str(k): v for k, v in values.items()}, lines)

    def source(self, name: str) -> Source:
        line = self.lines.get(name)
        return Source("yaml", f"{self.path} line {line}" if line else str(self.path))


def env_variable(name: str, prefixes: tuple[str, ...] = (ENV_PREFIX,)) -> str | None:
    """The environment variable that sets `name`, if one does (matched case-insensitively,
    as pydantic-settings does; the first prefix first)."""
    for prefix in prefixes:
        wanted = f"{prefix}{name}".upper()
        for key in os.environ:
            if key.upper() == wanted:
                return key
    return None


def source_of(
    name: str,
    flags: dict[str, str],
    yaml_files: tuple[YamlFile, ...],
    code_defaults: dict[str, Any],
    prefixes: tuple[str, ...] = (ENV_PREFIX,),
) -> Source:
    """The highest layer that sets `name`. `flags` maps a field to the flag that set it."""
    if name in flags:
        return Source("flag", flags[name])
    variable = env_variable(name, prefixes)
    if variable is not None:
        return Source("env", variable)
    for yaml_file in yaml_files:
        if name in yaml_file.values:
            return yaml_file.source(name)
    if name in code_defaults:
        return CODE
    return DEFAULT
