"""The toy server's own command, registered by import string (`factory.add_command`)."""

from __future__ import annotations

import typer


def show_port(port: int = typer.Option(0, "--port", help="An option of its own.")) -> None:
    """An author's command with its own --port: it keeps it; the global one is the setting."""
    from __main__ import factory  # the toy server script, run as `python toy_server.py`

    typer.echo(f"own {port}, setting {factory.load_settings().port}")
