"""`python -m mcp_lifecycle.fleet.serve`: the server process of a fleet member.

`up` runs it detached, as a server's own CLI runs `start --foreground`, and hands it the
member's entry (`FLEET_ENTRY_ENV`) besides the usual handoff. The runtime, the supervisor and every
file are those of a server built on the library; only the start handler is `fleet.foreign`'s.
"""

from __future__ import annotations

import os
import sys

from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.fleet.spec import ServerEntry
from mcp_lifecycle.handoff import FLEET_ENTRY_ENV


def main() -> None:
    from mcp_lifecycle.control.start import ensure_startable
    from mcp_lifecycle.fleet.foreign import handler_for
    from mcp_lifecycle.handoff import take_from_environ
    from mcp_lifecycle.server.bootstrap import run_foreground
    from mcp_lifecycle.settings.loader import SettingsLoader

    text = os.environ.get(FLEET_ENTRY_ENV)  # left in place: a supervisor runs this module again
    if not text:
        sys.stderr.write(
            "Error: this module is run by `mcp-lifecycle up`, not by hand; use `up NAME`\n"
        )
        sys.exit(5)
    entry = ServerEntry.from_json(text)
    handed = take_from_environ()
    loader = SettingsLoader(entry.name)
    try:
        run_foreground(
            lambda: loader.load(handed.flags),
            lambda: handler_for(entry),
            handed,
            reload_handler=None,
            ensure_startable=lambda paths, action: ensure_startable(paths, action, False),
        )
    except LifecycleError as exc:
        sys.stderr.write(f"Error: {exc.message}\n")
        sys.exit(int(exc.exit_code))


if __name__ == "__main__":
    main()
