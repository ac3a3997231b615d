"""Exceptions that carry meaning.

Each one is tied to exactly one `ExitCode`; the CLI edge turns them into a message and that code.
`hint` says what the person should do next.
"""

from __future__ import annotations

from mcp_lifecycle.exit_codes import ExitCode


class LifecycleError(Exception):
    exit_code: ExitCode = ExitCode.GENERAL_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ServerFailed(LifecycleError):
    """The server crashed, or exited before it was ready."""

    def __init__(self, message: str, hint: str | None = None, log_tail: str = "") -> None:
        super().__init__(message, hint)
        self.log_tail = log_tail


class NotRunning(LifecycleError):
    exit_code = ExitCode.SERVER_NOT_RUNNING


class AlreadyRunning(LifecycleError):
    exit_code = ExitCode.SERVER_ALREADY_RUNNING


class HealthCheckFailed(LifecycleError):
    exit_code = ExitCode.HEALTH_CHECK_FAILED


class ConfigurationError(LifecycleError):
    exit_code = ExitCode.CONFIGURATION_ERROR


class InsecurePathError(LifecycleError):
    """A path is owned by someone else, writable by others, or is a symlink."""

    exit_code = ExitCode.PERMISSION_ERROR


class StartTimeout(ServerFailed):
    exit_code = ExitCode.TIMEOUT


class Interrupted(LifecycleError):
    """Ctrl-C (or a caller's cancel) ended a wait; what it started was taken back."""


class StopTimeout(LifecycleError):
    exit_code = ExitCode.TIMEOUT


class ReloadTimeout(LifecycleError):
    exit_code = ExitCode.TIMEOUT


class StalePid(LifecycleError):
    """A PID file names a process that is gone, or that is not our server."""

    exit_code = ExitCode.STALE_PID


class CorruptFile(LifecycleError):
    """A file of ours holds something we cannot parse (handled as stale by callers)."""

    exit_code = ExitCode.STALE_PID


def error_for_exit_code(code: int, message: str, hint: str | None = None) -> LifecycleError:
    """Rebuild an error reported by another process (the server, over the readiness pipe)."""
    for cls in (
        AlreadyRunning,
        ConfigurationError,
        InsecurePathError,
        StartTimeout,
        StalePid,
        NotRunning,
        HealthCheckFailed,
    ):
        if int(cls.exit_code) == code:
            return cls(message, hint)
    return ServerFailed(message, hint)


def os_error(exc: OSError, where: object = None) -> LifecycleError:
    """An operating-system error as one line that names its cause, the path (or `where`, for
    calls on a file descriptor, which carry no name), and what to do."""
    import errno
    import os

    name = where if where is not None else exc.filename
    path = f" {name}" if name else ""
    cause = os.strerror(exc.errno) if exc.errno else str(exc)
    where = f"{cause}:{path}" if path else cause
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LifecycleError(
            where, hint="free some space on that file system, or choose another cache_root"
        )
    if exc.errno == errno.EROFS:
        return InsecurePathError(
            where, hint="choose a cache_root (or log_file) on a writable file system"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return InsecurePathError(where, hint="check the owner and permissions of that path")
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ELOOP):
        return InsecurePathError(
            where,
            hint="a part of that path is not what it should be: check cache_root, log_file "
            "and XDG_STATE_HOME",
        )
    return LifecycleError(where, hint="run again with -v for details")
