"""`service systemd` and `service kubernetes`: print what runs the server under them."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mcp_lifecycle.cli.commands import Commands
from mcp_lifecycle.cli.errors import LifecycleGroup, command_flags, edge
from mcp_lifecycle.errors import ConfigurationError

if TYPE_CHECKING:
    from mcp_lifecycle.service.definitions import ServiceInputs
    from mcp_lifecycle.settings.model import MCPServerSettings


class ServiceCommands(Commands):
    def register(self, app: typer.Typer) -> None:
        _register(app, self)


def _register(app: typer.Typer, commands: Commands) -> None:
    name = commands.name
    service = typer.Typer(
        cls=LifecycleGroup,
        help="Print a service definition that runs this server under systemd or Kubernetes. "
        "It carries the settings the server declares; secrets only by reference.",
        no_args_is_help=True,
    )

    @service.command(
        "systemd",
        help="Print a sandboxed systemd unit (Type=notify, reload by SIGHUP, KillMode=mixed) "
        "with the flags and declared MCP_SERVER_* variables in force now. Secret settings go "
        "to a 0600 EnvironmentFile only root may change (default "
        f"/etc/mcp-lifecycle/{name}.env), never into the unit. With --user, a unit for your "
        "own service manager (systemctl --user), its secrets in a 0600 file of yours.\n\n"
        f"Example: {name} service systemd > /etc/systemd/system/{name}.service\n\n"
        f"Example: {name} service systemd --user > ~/.config/systemd/user/{name}.service",
    )
    @edge
    def systemd(
        ctx: typer.Context,
        env_file: Annotated[
            Path | None,
            typer.Option(
                "--env-file",
                help="Where the unit reads secret settings (default "
                f"/etc/mcp-lifecycle/{name}.env; with --user, your config folder's).",
            ),
        ] = None,
        per_user: Annotated[
            bool,
            typer.Option(
                "--user",
                help="A unit for your own service manager (systemctl --user): no root needed; "
                "it runs while you are logged in, or always with `loginctl enable-linger`.",
            ),
        ] = False,
    ) -> None:
        import os
        import pwd

        from mcp_lifecycle.files.private import ensure_cache_root
        from mcp_lifecycle.service.definitions import systemd_unit

        settings, inputs = _inputs(commands, ctx)
        _one_supervisor(settings, "systemd")
        # ProtectSystem=strict mounts everything read-only but ReadWritePaths=, which must exist.
        cache_root = ensure_cache_root(settings.resolved_cache_root)
        uid = os.getuid()
        secrets_path = _place_secrets(settings, inputs, cache_root, env_file, per_user)
        try:
            user = None if uid == 0 else pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)  # a uid with no name (a container's): systemd takes the number
        from mcp_lifecycle.handoff import this_cli

        command = this_cli([])
        unit = systemd_unit(
            settings, command, os.getcwd(), inputs, user, secrets_path, per_user=per_user
        )
        typer.echo(unit, nl=False)

    _add_launchd(service, commands)

    @service.command(
        "kubernetes",
        help="Print a Deployment (restricted Pod Security Standard: non-root, read-only root "
        "filesystem, no capabilities) and a Service, with startup, readiness and liveness "
        "probes. Secret settings come from a Secret by reference.\n\n"
        f"Example: {name} service kubernetes --image registry.example/{name}:1.0 | "
        "kubectl apply -f -",
    )
    @edge
    def kubernetes(
        ctx: typer.Context,
        image: Annotated[
            str, typer.Option("--image", help="The container image that has the server.")
        ],
        command: Annotated[
            str | None,
            typer.Option(
                "--command", help="How the image runs this CLI (default: this console script)."
            ),
        ] = None,
        memory: Annotated[
            str, typer.Option("--memory", help="Memory limit of the container.")
        ] = "512Mi",
        cpu: Annotated[str, typer.Option("--cpu", help="CPU limit of the container.")] = "1",
    ) -> None:
        import shlex

        import yaml

        from mcp_lifecycle.service.definitions import (
            kubernetes_manifests,
            secret_name,
            token_secret,
        )

        settings, inputs = _inputs(commands, ctx)
        argv = shlex.split(command) if command else [_console_script()]
        resources = {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": cpu, "memory": memory},
        }
        documents = kubernetes_manifests(settings, argv, image, inputs, resources)
        _one_supervisor(settings, "Kubernetes")
        if inputs.secrets:
            literals = " ".join(f"--from-literal={key}=..." for key in sorted(inputs.secrets))
            typer.echo(
                f"The manifest reads {', '.join(sorted(inputs.secrets))} from the Secret "
                f"{secret_name(settings.server_name)}; create it first:\n"
                f"  kubectl create secret generic {secret_name(settings.server_name)} "
                f"{literals}",
                err=True,
            )
        if settings.port is not None and settings.auth == "token":
            typer.echo(
                f"The server reads its bearer token from the Secret "
                f"{token_secret(settings.server_name)}; create it first (and give the same "
                "token to its clients):\n  kubectl create secret generic "
                f"{token_secret(settings.server_name)} "
                "--from-literal=token=\"$(python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')\"",
                err=True,
            )
        typer.echo(yaml.safe_dump_all(documents, sort_keys=False), nl=False)

    app.add_typer(service, name="service")


def _add_launchd(service: typer.Typer, commands: Commands) -> None:
    name = commands.name

    @service.command(
        "launchd",
        help="Print a LaunchAgent (macOS) that starts the server at login and again when it "
        "fails, with the flags and declared MCP_SERVER_* variables in force now. Secret "
        "settings are never put in it: keep them in settings/local.yaml (mode 600).\n\n"
        f"Example: {name} service launchd > ~/Library/LaunchAgents/io.mcp-lifecycle.{name}.plist",
    )
    @edge
    def launchd(ctx: typer.Context) -> None:
        import os
        import sys

        from mcp_lifecycle.handoff import this_cli
        from mcp_lifecycle.service.definitions import launchd_agent

        settings, inputs = _inputs(commands, ctx)
        _one_supervisor(settings, "launchd")
        if inputs.secrets:
            typer.echo(
                f"Not in the agent: {', '.join(sorted(inputs.secrets))} (secret). Keep them in "
                "settings/local.yaml in the working directory, readable by you alone.",
                err=True,
            )
        agent = launchd_agent(settings, this_cli([]), os.getcwd(), inputs)
        sys.stdout.buffer.write(agent)
        sys.stdout.flush()


def _place_secrets(
    settings: "MCPServerSettings",
    inputs: "ServiceInputs",
    cache_root: Path,
    env_file: Path | None,
    per_user: bool,
) -> Path | None:
    """Write the secret settings where the unit reads them (EnvironmentFile=); None: none."""
    import os

    from mcp_lifecycle.service.definitions import write_secrets

    if not inputs.secrets:
        return None
    writable = [cache_root]
    if settings.log_file is not None:
        writable.append(settings.log_file.parent)
    if per_user and env_file is None:
        from platformdirs import user_config_path

        env_file = user_config_path("mcp-lifecycle") / f"{settings.server_name}.env"
    uid = os.getuid()
    placed = write_secrets(
        settings.server_name, inputs.secrets, env_file, writable, as_root=uid == 0, own=per_user
    )
    names = ", ".join(sorted(inputs.secrets))
    if placed.install is None:
        whose = "yours" if per_user and uid != 0 else "root's"
        typer.echo(f"Wrote {names} to {placed.written} (mode 600, {whose}).", err=True)
    else:
        typer.echo(
            f"Wrote {names} to {placed.written} (mode 600). systemd reads them as "
            f"root from {placed.unit_path}, which only root may change; put them "
            f"there:\n  {placed.install}",
            err=True,
        )
    return placed.unit_path


def _one_supervisor(settings: "MCPServerSettings", manager: str) -> None:
    if settings.restart_policy != "never":
        typer.echo(
            f"Note: {manager} restarts the server; its restart_policy "
            f"({settings.restart_policy}) does not apply there (one supervisor, not two).",
            err=True,
        )


def _inputs(commands: Commands, ctx: typer.Context) -> "tuple[MCPServerSettings, ServiceInputs]":
    import os

    from mcp_lifecycle.service.definitions import service_inputs

    flags = command_flags(ctx)
    settings = commands.loader.load(flags)
    if settings.transport == "stdio":
        raise ConfigurationError(
            f"{settings.server_name} speaks MCP over stdio: no service manager can run it "
            "(stdin would be /dev/null)",
            hint="let its MCP client start it with `start --foreground`",
        )
    from mcp_lifecycle.settings.sources import env_prefixes

    prefixes = env_prefixes(commands.loader.env_prefix)
    return settings, service_inputs(type(settings), dict(os.environ), flags.values, prefixes)


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
