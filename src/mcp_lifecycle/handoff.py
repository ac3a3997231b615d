"""What a detached `start` hands to the server it spawns, and how the server answers.

The server writes one line to the readiness pipe: READY, or FAILED <exit code> <message>
[TAB <hint>]. Closing the pipe without a line means it died.
"""

READY_FD_ENV = "MCP_LIFECYCLE_READY_FD"
# The file a detached server's stdout and stderr point at; its logging rotates it.
LOG_ENV = "MCP_LIFECYCLE_LOG"
# The flags `start` was given, as JSON, so the server resolves the same settings.
OVERRIDES_ENV = "MCP_LIFECYCLE_OVERRIDES"
READY_MESSAGE = "READY"
FAILED_PREFIX = "FAILED"
# How the server records, for `reload`, that its settings were applied but its hook raised.
HOOK_FAILED = "the new settings are applied, but the server's reload hook failed"


def failure_line(code: int, message: str, hint: str | None = None) -> str:
    return f"{FAILED_PREFIX} {code} {message}\t{hint or ''}"


def send_line(fd: int, line: str) -> None:
    """Write the one line and close the pipe; a starter that went away is no error."""
    import contextlib
    import os

    with contextlib.suppress(OSError):
        os.write(fd, (line.replace("\n", " ").rstrip("\t") + "\n").encode())
    with contextlib.suppress(OSError):
        os.close(fd)
