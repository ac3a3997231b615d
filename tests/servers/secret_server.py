"""A server whose settings declare a secret (SecretStr), a secret-sounding str and a plain
field: what service definitions may carry in clear and what only by reference."""

from __future__ import annotations

import threading

from pydantic import BaseModel, SecretStr

from mcp_lifecycle import MCPServerCLIFactory, MCPServerSettings, notify_ready


class Database(BaseModel):
    host: str = "localhost"
    password: SecretStr | None = None


class SecretSettings(MCPServerSettings):
    api_token: SecretStr | None = None
    database_password: str = ""
    authtoken: str = ""
    db: Database = Database()
    greeting: str = "hello"


def run() -> None:
    notify_ready()
    threading.Event().wait()


app = MCPServerCLIFactory("secretive", settings=SecretSettings, start_handler=run).create_app()

if __name__ == "__main__":
    app()
