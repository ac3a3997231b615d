"""config, doctor, version, logs: the operator's commands."""

from typing import TYPE_CHECKING, Annotated

import typer

from mcp_lifecycle.cli.edge import (
    JsonOption,
    LifecycleGroup,
    bad,
    echo_json,
    edge,
    good,
    overrides,
    warn,
)
from mcp_lifecycle.errors import ConfigurationError, NotRunning
from mcp_lifecycle.exit_codes import ExitCode

if TYPE_CHECKING:
    from mcp_lifecycle.cli.factory import MCPServerCLIFactory
    from mcp_lifecycle.settings import MCPServerSettings


class OperatorCommands:
    def __init__(self, factory: "MCPServerCLIFactory") -> None:
        self.factory = factory

    def register(self, app: typer.Typer) -> None:
        name = self.factory.server_name
        app.command(
            "config",
            help="Show every effective setting and where its value came from.\n\n"
            f"Example: {name} config --json",
        )(edge(self.config))
        app.command(
            "doctor",
            help="Check settings, files, permissions, the port and dependencies; say how to "
            f"fix what is wrong.\n\nExit 0 unless a check is an error.\n\nExample: {name} doctor",
        )(edge(self.doctor))
        app.command(
            "version",
            help=f"Show the versions of the server, mcp-lifecycle and the MCP SDK."
            f"\n\nExample: {name} version --json",
        )(edge(self.version))
        app.command(
            "logs",
            help="Show the detached server's log; --follow keeps printing new lines.\n\n"
            f"Example: {name} logs --lines 100 --follow",
        )(edge(self.logs))

    def config(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        resolved = self.factory.resolve_settings(overrides(ctx))
        settings = resolved.settings
        rows = {}
        for name in type(settings).model_fields:
            source = resolved.source(name)
            rows[name] = {
                "value": getattr(settings, name),
                "source": source.kind,
                "from": str(source),
            }
        rows["cache_root"]["effective"] = str(settings.resolved_cache_root)
        rows["heartbeat_seconds"]["effective"] = settings.heartbeat_interval
        if as_json:
            echo_json({"server": settings.server_name, "settings": rows})
            return
        width = max(len(name) for name in rows)
        for name, row in rows.items():
            value = row.get("effective", row["value"])
            shown = "(none)" if value is None else value
            typer.echo(f"{name:<{width}}  {shown}  {typer.style('# ' + row['from'], dim=True)}")

    def doctor(self, ctx: typer.Context, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.doctor import ERROR, OK, diagnose

        flags = overrides(ctx)
        findings = diagnose(lambda: self.factory.resolve_settings(flags).settings)
        failed = any(finding.level == ERROR for finding in findings)
        code = ExitCode.GENERAL_ERROR if failed else ExitCode.SUCCESS
        if as_json:
            echo_json(
                {"ok": not failed, "checks": [f.as_dict() for f in findings], "exit_code": code}
            )
            raise typer.Exit(int(code))
        for finding in findings:
            mark = {OK: good("ok   "), ERROR: bad("error")}.get(finding.level, warn("warn "))
            typer.echo(f"[{mark}] {finding.check}: {finding.detail}")
            if finding.fix and finding.level != OK:
                typer.echo(f"        fix: {finding.fix}")
        typer.echo(bad("Some checks failed.") if failed else good("No problems found."))
        raise typer.Exit(int(code))

    def version(self, as_json: JsonOption = False) -> None:
        from mcp_lifecycle.doctor import versions

        found = versions()
        server = self.factory.server_version or found.get(self.factory.server_name)
        data = {
            "server": self.factory.server_name,
            "server_version": server,
            "mcp_lifecycle": found["mcp-lifecycle"],
            "mcp_sdk": found["mcp"],
            "python": found["python"],
        }
        if as_json:
            echo_json(data)
            return
        typer.echo(f"{self.factory.server_name} {server or '(version unknown)'}")
        typer.echo(f"mcp-lifecycle {found['mcp-lifecycle']}")
        typer.echo(f"mcp (SDK) {found['mcp'] or 'not installed'}")
        typer.echo(f"python {found['python']}")

    def logs(
        self,
        ctx: typer.Context,
        lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many lines.")] = 50,
        follow: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C ends).")
        ] = False,
    ) -> None:
        from mcp_lifecycle.logtail import follow as follow_log
        from mcp_lifecycle.logtail import last_lines
        from mcp_lifecycle.paths import ServerPaths

        settings = self.factory.fast_settings(overrides(ctx))
        path = ServerPaths.for_settings(settings).log
        if not path.exists():
            raise NotRunning(f"no log at {path}", hint="the log is written by a detached `start`")
        for line in last_lines(path, lines):
            typer.echo(line)
        if follow:
            try:
                for line in follow_log(path):
                    typer.echo(line)
            except KeyboardInterrupt:
                return


def register_service(app: typer.Typer, factory: "MCPServerCLIFactory") -> None:
    """`service systemd` and `service kubernetes`: print what runs the server under them."""
    name = factory.server_name
    service = typer.Typer(
        cls=LifecycleGroup,
        help="Print a service definition that runs this server under systemd or Kubernetes.",
        no_args_is_help=True,
    )

    @service.command(
        "systemd",
        help="Print a systemd unit (Type=notify, reload by SIGHUP, KillMode=mixed), with the "
        "flags and MCP_SERVER_* variables in force now.\n\n"
        f"Example: {name} service systemd > /etc/systemd/system/{name}.service",
    )
    @edge
    def systemd(ctx: typer.Context) -> None:
        import getpass
        import os

        from mcp_lifecycle.service_files import systemd_unit

        settings = _service_settings(ctx)
        environment = {
            **_server_environment(),
            "MCP_SERVER_CACHE_ROOT": str(settings.resolved_cache_root),
        }
        user = None if os.getuid() == 0 else getpass.getuser()
        command = [*_own_command(), *_flag_arguments(ctx)]
        typer.echo(systemd_unit(settings, command, os.getcwd(), environment, user), nl=False)

    @service.command(
        "kubernetes",
        help="Print a Deployment and Service with startup, readiness and liveness probes.\n\n"
        f"Example: {name} service kubernetes --image registry.example/{name}:1.0 | "
        "kubectl apply -f -",
    )
    @edge
    def kubernetes(
        ctx: typer.Context,
        image: Annotated[
            str, typer.Option("--image", help="The container image that has the server.")
        ] = f"REPLACE-ME/{name}:latest",
        command: Annotated[
            str | None,
            typer.Option(
                "--command", help="How the image runs this CLI (default: this console script)."
            ),
        ] = None,
    ) -> None:
        import shlex

        import yaml

        from mcp_lifecycle.service_files import kubernetes_manifests

        settings = _service_settings(ctx)
        argv = [*(shlex.split(command) if command else [_console_script()]), *_flag_arguments(ctx)]
        documents = kubernetes_manifests(settings, argv, image, _server_environment())
        typer.echo(yaml.safe_dump_all(documents, sort_keys=False), nl=False)

    def _service_settings(ctx: typer.Context) -> "MCPServerSettings":
        settings = factory.resolve_settings(overrides(ctx)).settings
        if settings.transport == "stdio":
            raise ConfigurationError(
                f"{settings.server_name} speaks MCP over stdio: no service manager can run it "
                "(stdin would be /dev/null)",
                hint="let its MCP client start it with `start --foreground`",
            )
        return settings

    def _flag_arguments(ctx: typer.Context) -> list[str]:
        # Every flag as --set, before the command: the service runs on the same settings.
        return [f"--set={key}={_flag_text(value)}" for key, value in overrides(ctx).values.items()]

    app.add_typer(service, name="service")


def _flag_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _server_environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.upper().startswith("MCP_SERVER_")}


def _own_command() -> list[str]:
    import sys

    from mcp_lifecycle.launcher import python_command

    return python_command(sys.argv[0], [])


def _console_script() -> str:
    """This CLI's name, if it is a console script that the image will also have on PATH."""
    import os
    import shutil
    import sys

    name = os.path.basename(sys.argv[0])
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(sys.argv[0]):
        return name
    raise ConfigurationError(
        f"{sys.argv[0]} is not a console script on PATH, so the image cannot run it by name",
        hint='pass --command "how the image runs this CLI", e.g. --command "python -m my_server"',
    )
