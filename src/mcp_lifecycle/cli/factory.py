"""MCPServerCLIFactory: the standard lifecycle CLI for one MCP server."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mcp_lifecycle.cli.hooks import Probe, ServerHooks
from mcp_lifecycle.errors import ConfigurationError
from mcp_lifecycle.settings.flags import Flags
from mcp_lifecycle.settings.loader import SettingsLoader

if TYPE_CHECKING:
    import typer

    from mcp_lifecycle.cli.app import LifecycleApp
    from mcp_lifecycle.settings.model import MCPServerSettings

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
        self.loader = SettingsLoader(
            server_name, settings, env_prefix=env_prefix, config_file=config_file
        )
        self.hooks = ServerHooks(start_handler, stop_handler, reload_handler, server_version, {})
        self._lazy_commands: list[tuple[str, str | None, dict[str, Any]]] = []
        self._apps: list[LifecycleApp] = []

    @property
    def settings_cls(self) -> type[MCPServerSettings]:
        return self.loader.settings_cls

    @property
    def probes(self) -> dict[str, Probe]:
        return self.hooks.probes

    def add_probe(self, name: str, probe: Probe) -> None:
        """Register a check that `health --probe` runs (in the CLI process). It returns True or
        None when healthy, False or a message when not, or raises."""
        self.hooks.probes[name] = probe

    def probe(self, name: str) -> Callable[[_F], _F]:
        def register(fn: _F) -> _F:
            self.add_probe(name, fn)
            return fn

        return register

    def add_command(self, target: str, name: str | None = None, **kwargs: Any) -> None:
        """Add a command of your own by import string, "package.module:function": the module
        is imported only when the Typer app is built (for that command, help, ...), so a
        module that imports Typer itself (for `typer.Argument`) or heavy code costs `status`,
        `health` and `stop` nothing. `kwargs` are `app.command()`'s."""
        module, sep, attribute = target.partition(":")
        if not sep or not module or not attribute:
            raise ConfigurationError(f"add_command needs 'package.module:function', got {target!r}")
        self._lazy_commands.append((target, name, kwargs))
        for app in self._apps:
            if app.built:  # too late to wait for the build: it is registered now
                _register_command(app.typer_app, target, name, kwargs)

    def load_settings(self, flags: Flags | dict[str, Any] | None = None) -> MCPServerSettings:
        """The effective settings: flags > the server's own variables (`env_prefix`) >
        MCP_SERVER_* > settings/local.yaml > the server's own file (`config_file`, default
        settings/<server>.yaml) > code > defaults. Inside a command, without `flags`, the
        global flags of this invocation (`--port`, `--set`, ...) are the flags."""
        if isinstance(flags, dict):
            flags = Flags(dict(flags), {name: f"--set {name}" for name in flags})
        return self.loader.load(flags)

    def client(self, flags: Flags | None = None) -> AbstractAsyncContextManager[Any]:
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
        """The lifecycle CLI. It is a Typer app to you (add commands, test it with Typer's
        CliRunner), built when first needed: `status`, `health` and `stop` answer without
        loading Typer at all when their command line is plain (`cli.fast`)."""
        from mcp_lifecycle.cli.app import LifecycleApp

        app = LifecycleApp(self._build_typer, self._run_fast)
        self._apps.append(app)
        return cast("typer.Typer", app)

    def _run_fast(self, argv: list[str]) -> int | None:
        from mcp_lifecycle.cli import fast
        from mcp_lifecycle.cli.app import takes_hot_name

        for target, name, _ in self._lazy_commands:
            if takes_hot_name(name, target.partition(":")[2]):
                return None  # the author's own status, health or stop: Typer runs it
        return fast.run(argv, self.loader, self.hooks.stop_handler)

    def _build_typer(self) -> typer.Typer:
        import typer

        from mcp_lifecycle.cli.access import AccessCommands
        from mcp_lifecycle.cli.errors import LifecycleGroup, edge
        from mcp_lifecycle.cli.lifecycle import LifecycleCommands
        from mcp_lifecycle.cli.operations import OperatorCommands
        from mcp_lifecycle.cli.reports import ReportCommands
        from mcp_lifecycle.cli.root import root_options
        from mcp_lifecycle.cli.service import ServiceCommands

        app = typer.Typer(
            cls=LifecycleGroup,
            name=self.server_name,
            help=f"Lifecycle commands for the {self.server_name} MCP server.\n\n{EXIT_CODES_HELP}",
            no_args_is_help=True,
            add_completion=False,
            pretty_exceptions_enable=False,
        )
        app.callback()(edge(self._checked_name(root_options)))
        for commands in (
            LifecycleCommands,
            ReportCommands,
            OperatorCommands,
            AccessCommands,
            ServiceCommands,
        ):
            commands(self.loader, self.hooks).register(app)
        for target, name, kwargs in self._lazy_commands:
            _register_command(app, target, name, kwargs)
        return app


def _register_command(
    app: typer.Typer, target: str, name: str | None, kwargs: dict[str, Any]
) -> None:
    """Import `target` ("package.module:function") and add it to `app` as a command."""
    import importlib

    module, _, attribute = target.partition(":")
    try:
        function = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot add the command {target!r}: {exc}",
            hint="check the import string given to factory.add_command",
        ) from None
    app.command(name, **kwargs)(function)
