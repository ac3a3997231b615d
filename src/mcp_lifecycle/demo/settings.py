"""The demo server's settings: the library's, with a default port.

Kept apart from the CLI module and named to the factory as an import string, so that `status`
and `stop` never import pydantic-settings (see MCPServerCLIFactory).
"""

from mcp_lifecycle.settings.model import MCPServerSettings


class DemoSettings(MCPServerSettings):
    port: int | None = 8765
