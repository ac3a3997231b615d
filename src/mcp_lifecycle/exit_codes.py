"""The fixed exit codes every lifecycle command returns (a contract for scripts)."""

from enum import IntEnum


class ExitCode(IntEnum):
    SUCCESS = 0
    GENERAL_ERROR = 1
    SERVER_NOT_RUNNING = 2
    SERVER_ALREADY_RUNNING = 3
    HEALTH_CHECK_FAILED = 4
    CONFIGURATION_ERROR = 5
    PERMISSION_ERROR = 6
    TIMEOUT = 7
    STALE_PID = 8
