"""SettingsLoader: how every command gets a server's settings.

One per server CLI. `resolve` reads every layer and validates (and remembers the lifecycle
fields in the cache); `fields` gives the lifecycle fields, from the cache when nothing the
resolution reads has changed, so that the hot commands load neither pydantic nor the
author's settings class.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_lifecycle.errors import ConfigurationError
from mcp_lifecycle.settings import cache
from mcp_lifecycle.settings.fields import LifecycleFields
from mcp_lifecycle.settings.flags import Flags, invocation_flags
from mcp_lifecycle.settings.sources import env_prefixes, yaml_files_for

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings, ResolvedSettings

DEFAULT_CLASS = "mcp_lifecycle.settings.model:MCPServerSettings"


class SettingsLoader:
    """`settings` is a subclass of MCPServerSettings, an instance (its values act as defaults in
    code), or, fastest, the subclass as an import string "package.module:Class"."""

    def __init__(
        self,
        server_name: str,
        settings: MCPServerSettings | type[MCPServerSettings] | str | None = None,
        *,
        env_prefix: str | None = None,
        config_file: str | Path | None = None,
    ) -> None:
        self.server_name = server_name
        # This server's own variables (e.g. MY_SERVER_PORT), above the shared MCP_SERVER_*
        # ones, and its own settings file in place of settings/<server>.yaml.
        self.env_prefix = env_prefix.upper() if env_prefix else None
        self.config_file = Path(config_file).expanduser() if config_file else None
        self._settings_cls: type[MCPServerSettings] | None = None
        self._code_defaults: dict[str, Any] = {}
        if isinstance(settings, str):
            self._class_spec = settings
        elif isinstance(settings, type):
            self._settings_cls = settings
            self._class_spec = f"{settings.__module__}:{settings.__qualname__}"
        elif settings is not None:
            # Values the author set in code sit just above the defaults: YAML, environment and
            # flags still override them.
            self._settings_cls = type(settings)
            self._class_spec = f"{type(settings).__module__}:{type(settings).__qualname__}"
            self._code_defaults = settings.model_dump(exclude_unset=True, exclude={"server_name"})
        else:
            self._class_spec = DEFAULT_CLASS

    @property
    def settings_cls(self) -> type[MCPServerSettings]:
        if self._settings_cls is None:
            module, _, name = self._class_spec.partition(":")
            try:
                self._settings_cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise ConfigurationError(
                    f"cannot load the settings class {self._class_spec!r}: {exc}",
                    hint='give settings= as "package.module:Class"',
                ) from None
        assert self._settings_cls is not None
        return self._settings_cls

    def resolve(self, flags: Flags | None = None) -> ResolvedSettings:
        """Every layer, validated, with the source of each value (for messages and `config`).
        Without `flags`, the global flags of the command running now."""
        from mcp_lifecycle.logs import configure_for_command
        from mcp_lifecycle.settings.model import resolve_settings

        # A hot command that missed its cache warns (an unknown key in a settings file, say)
        # as every command does.
        configure_for_command()
        flags = flags if flags is not None else invocation_flags()
        settings_cls = self.settings_cls
        before = self._cache_key(flags)
        resolved = resolve_settings(
            settings_cls,
            self.server_name,
            flags.values,
            self._code_defaults,
            flags.given_as,
            env_prefix=self.env_prefix,
            config_file=self.config_file,
        )
        # Store only what was resolved from the inputs the key names: a file saved during the
        # resolution must not leave old values under its new content.
        files = cache.class_files(settings_cls)
        if (
            before is not None
            and files is not None
            and before == self._cache_key(flags)
            and cache.cacheable(settings_cls)
        ):
            cache.store(before, LifecycleFields.of(resolved.settings), files)
        return resolved

    def load(self, flags: Flags | None = None) -> MCPServerSettings:
        """The effective settings, every field of the author's class included."""
        return self.resolve(flags).settings

    def fields(self, flags: Flags | None = None) -> LifecycleFields:
        """The lifecycle fields: from the cache when nothing changed, else resolved in full."""
        flags = flags if flags is not None else invocation_flags()
        cached = cache.load(self._cache_key(flags), self.server_name)
        if cached is not None:
            return cached
        return LifecycleFields.of(self.resolve(flags).settings)

    def _cache_key(self, flags: Flags) -> str | None:
        return cache.key(
            self._class_spec,
            self.server_name,
            flags.values,
            {name: repr(value) for name, value in self._code_defaults.items()},
            yaml_files_for(self.server_name, self.config_file),
            env_prefixes(self.env_prefix),
        )
