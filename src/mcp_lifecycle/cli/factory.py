"""MCPServerCLIFactory: the standard lifecycle CLI for one MCP server."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from mcp_lifecycle.cli.errors import LifecycleGroup, Overrides, edge, invocation_flags
from mcp_lifecycle.errors import ConfigurationError, LifecycleError

if TYPE_CHECKING:
    from mcp_lifecycle.settings.model import MCPServerSettings, ResolvedSettings
    from mcp_lifecycle.settings.view import LifecycleSettings

_F = TypeVar("_F", bound=Callable[..., Any])

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 error, 2 not running, 3 already running, 4 unhealthy, "
    "5 configuration or usage error, 6 permission, 7 timeout, 8 stale PID file."
)


class MCPServerCLIFactory:
    """Builds the standard lifecycle CLI for one MCP server.

    >>> factory = MCPServerCLIFactory("my-server", start_handler=run)
    >>> app = factory.create_app()   # a typer.Typer; add your own @app.command()s

    `settings` is a subclass of MCPServerSettings, an instance (its values act as defaults in
    code), or, fastest, the subclass as an import string "package.module:Class": then `status`,
    `stop` and `health` load neither it nor pydantic when their validated settings are cached.
    """

    def __init__(
        self,
        server_name: str,
        settings: MCPServerSettings | type[MCPServerSettings] | str | None = None,
        start_handler: Callable[[], None] | None = None,
        stop_handler: Callable[[int], None] | None = None,
        *,
        reload_handler: Callable[[MCPServerSettings], None] | None = None,
        server_version: str | None = None,
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
            self._class_spec = "mcp_lifecycle.settings.model:MCPServerSettings"
        self.start_handler = start_handler
        self.stop_handler = stop_handler
        self.reload_handler = reload_handler
        self.server_version = server_version
        self.probes: dict[str, Callable[[], bool | str | None]] = {}

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

    def add_probe(self, name: str, probe: Callable[[], bool | str | None]) -> None:
        """Register a check that `health --probe` runs (in the CLI process). It returns True or
        None when healthy, False or a message when not, or raises."""
        self.probes[name] = probe

    def probe(self, name: str) -> Callable[[_F], _F]:
        def register(fn: _F) -> _F:
            self.add_probe(name, fn)
            return fn

        return register

    def resolve_settings(self, flags: Overrides | None = None) -> ResolvedSettings:
        """Every layer, validated, with the source of each value; remembered for fast_settings."""
        from mcp_lifecycle.settings import cache as settings_cache
        from mcp_lifecycle.settings.model import resolve_settings

        flags = flags if flags is not None else invocation_flags()
        settings_cls = self.settings_cls
        before = self._cache_key(flags)
        resolved = resolve_settings(
            settings_cls,
            self.server_name,
            flags.values,
            self._code_defaults,
            flags.flags,
            env_prefix=self.env_prefix,
            config_file=self.config_file,
        )
        # Store only what was resolved from the inputs the key names: a file saved during the
        # resolution must not leave old values under its new content.
        files = settings_cache.class_files(settings_cls)
        if (
            before is not None
            and files is not None
            and before == self._cache_key(flags)
            and settings_cache.cacheable(settings_cls)
        ):
            values = settings_cache.lifecycle_values(resolved.settings)
            settings_cache.store(before, values, files)
        return resolved

    def fast_settings(self, flags: Overrides | None = None) -> LifecycleSettings:
        """The settings for the read-mostly commands: from the cache when nothing changed."""
        from mcp_lifecycle.settings import cache as settings_cache
        from mcp_lifecycle.settings.view import SettingsView

        flags = flags if flags is not None else invocation_flags()
        cached = settings_cache.load(self._cache_key(flags), self.server_name)
        if cached is not None:
            return SettingsView(cached)
        return self.resolve_settings(flags).settings

    def running_settings(self, flags: Overrides | None = None) -> LifecycleSettings:
        """The settings of the server the read-mostly commands (status, stop, health, logs,
        reload) act on: this invocation's, unless the registry knows better. A server that
        runs with another cache root than these settings name, or whose settings files broke
        since it started, is found by its name (a warning says so when settings broke)."""
        from mcp_lifecycle.control import discovery
        from mcp_lifecycle.files.paths import ServerPaths
        from mcp_lifecycle.files.pidfile import lock_is_held
        from mcp_lifecycle.settings.sources import env_prefixes, env_variable
        from mcp_lifecycle.settings.view import SettingsView, default_cache_root

        flags = flags if flags is not None else invocation_flags()
        variable = env_variable("cache_root", env_prefixes(self.env_prefix))
        pinned = flags.values.get("cache_root") or (os.environ[variable] if variable else None)
        try:
            settings = self.fast_settings(flags)
        except ConfigurationError as exc:
            found = discovery.find_running(self.server_name, Path(pinned) if pinned else None)
            if found is None:
                raise
            typer.echo(
                f"Warning: {exc.message}\n  Acting on the running {self.server_name} (PID "
                f"{found.pid}) with the settings it started with; fix the settings before "
                "its next start.",
                err=True,
            )
            return SettingsView(found.settings)
        # Only a server on the default cache root may be looked for elsewhere: one whose
        # settings name a cache root (any layer) means that one, even when nothing runs there.
        if pinned or settings.resolved_cache_root != default_cache_root(self.server_name):
            return settings
        try:
            if lock_is_held(ServerPaths.for_settings(settings).lock):
                return settings
        except LifecycleError:
            return settings  # the command itself will say what is wrong there
        found = discovery.find_running(self.server_name)
        if found is None:
            return settings
        typer.echo(
            f"Note: {self.server_name} runs with the cache root {found.cache_root} "
            "(found by its name); acting on it.",
            err=True,
        )
        return SettingsView(found.settings)

    def _cache_key(self, flags: Overrides) -> str | None:
        from mcp_lifecycle.settings import cache as settings_cache
        from mcp_lifecycle.settings.sources import env_prefixes, yaml_files_for

        return settings_cache.key(
            self._class_spec,
            self.server_name,
            flags.values,
            {name: repr(value) for name, value in self._code_defaults.items()},
            yaml_files_for(self.server_name, self.config_file),
            env_prefixes(self.env_prefix),
        )

    def load_settings(self, flags: Overrides | dict[str, Any] | None = None) -> MCPServerSettings:
        """The effective settings: flags > the server's own variables (`env_prefix`) >
        MCP_SERVER_* > settings/local.yaml > the server's own file (`config_file`, default
        settings/<server>.yaml) > code > defaults. Inside a command, without `flags`, the
        global flags of this invocation (`--port`, `--set`, ...) are the flags."""
        if isinstance(flags, dict):
            flags = Overrides(dict(flags), {name: f"--set {name}" for name in flags})
        return self.resolve_settings(flags).settings

    def client(self, flags: Overrides | None = None) -> AbstractAsyncContextManager[Any]:
        """The official MCP client, connected to this server over HTTP with its bearer
        token: for your own commands (`async with factory.client() as client: ...`)."""
        from mcp_lifecycle.files.paths import ServerPaths
        from mcp_lifecycle.transports.access import read_token
        from mcp_lifecycle.transports.probe import connect

        settings = self.load_settings(flags)
        if settings.url is None:
            raise ConfigurationError(
                f"{self.server_name} serves no HTTP endpoint", hint="set `port`"
            )
        return connect(settings.url, read_token(ServerPaths.for_settings(settings).token))

    def _checked_name(self, callback: _F) -> _F:
        """Every command refuses a server name that is not a safe file name (exit 5)."""
        from mcp_lifecycle.files.paths import server_name_problem

        @functools.wraps(callback)
        def checked(*args: Any, **kwargs: Any) -> Any:
            problem = server_name_problem(self.server_name)
            if problem is not None:
                raise ConfigurationError(
                    problem, hint="change the name given to MCPServerCLIFactory"
                )
            return callback(*args, **kwargs)

        return checked  # type: ignore[return-value]

    def create_app(self) -> typer.Typer:
        from mcp_lifecycle.cli.access import AccessCommands
        from mcp_lifecycle.cli.lifecycle import LifecycleCommands
        from mcp_lifecycle.cli.operations import OperatorCommands
        from mcp_lifecycle.cli.root import root_options
        from mcp_lifecycle.cli.service import register_service

        app = typer.Typer(
            cls=LifecycleGroup,
            name=self.server_name,
            help=f"Lifecycle commands for the {self.server_name} MCP server.\n\n{EXIT_CODES_HELP}",
            no_args_is_help=True,
            add_completion=False,
            pretty_exceptions_enable=False,
        )
        app.callback()(edge(self._checked_name(root_options)))
        LifecycleCommands(self).register(app)
        OperatorCommands(self).register(app)
        AccessCommands(self).register(app)
        register_service(app, self)
        return app
