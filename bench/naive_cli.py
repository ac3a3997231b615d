"""The naive baseline: a plain Typer + pydantic-settings CLI doing the same `status` work.

What a server author writes without mcp-lifecycle: settings with the same layers, a PID file,
a psutil check, the snapshot's age. It is timed beside ours by bench/run.py.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import typer
from platformdirs import user_state_path
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MCP_SERVER_")
    cache_root: Path | None = None
    health_ttl_seconds: float = 60
    port: int | None = 8765

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file="settings/local.yaml"),
            YamlConfigSettingsSource(settings_cls, yaml_file="settings/naive.yaml"),
        )


app = typer.Typer()


@app.command()
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    settings = Settings()
    root = settings.cache_root or user_state_path("mcp-lifecycle") / "mcp-lifecycle-demo"
    pid_file = root / "mcp-lifecycle-demo.pid"
    if not pid_file.exists():
        typer.echo("not running")
        raise typer.Exit(2)
    pid = int(pid_file.read_text())
    if not psutil.pid_exists(pid):
        typer.echo("stale")
        raise typer.Exit(8)
    snapshot = json.loads((root / "runtime_health.json").read_text())
    age = (datetime.now(UTC) - datetime.fromisoformat(snapshot["updated_at"])).total_seconds()
    typer.echo(f"running, snapshot {age:.1f}s old at {time.time():.0f}")
    raise typer.Exit(0 if age < settings.health_ttl_seconds else 4)


@app.command()
def stop() -> None:
    typer.echo("not part of the baseline")


if __name__ == "__main__":
    app()
