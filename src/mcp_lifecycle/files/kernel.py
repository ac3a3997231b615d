"""What the kernel offers here, in one place: Linux's /proc (start ticks, boot id, open files,
descriptor paths), abstract Unix sockets and PR_SET_PDEATHSIG. Elsewhere (macOS) none of them,
and every user falls back: psutil for start times, paths for folders, the heartbeat for a dead
supervisor. `MCP_LIFECYCLE_PORTABLE=1` takes them away on Linux too, so the fallbacks run in CI.
"""

from __future__ import annotations

import os
import sys

PORTABLE_ENV = "MCP_LIFECYCLE_PORTABLE"

LINUX = sys.platform.startswith("linux") and not os.environ.get(PORTABLE_ENV)
# /proc/PID/stat, /proc/PID/fd, /proc/self/fd/N, /proc/stat, the boot id.
PROC = LINUX and os.path.isdir("/proc/self")
# A name no file operation can undo (the server's name claim).
ABSTRACT_SOCKETS = LINUX
# The kernel ends a supervised server when its supervisor dies.
PARENT_DEATH_SIGNAL = LINUX

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def die_with_parent(signal_number: int) -> bool:
    """Have the kernel send `signal_number` to this process when its parent dies (the setting
    survives exec). False where the kernel cannot."""
    return PARENT_DEATH_SIGNAL and _prctl(_PR_SET_PDEATHSIG, signal_number)


def become_subreaper() -> bool:
    """Have this process's orphaned descendants reparented to it instead of to init, so it can
    end them. It survives exec: only for a process that reaps them. False where it cannot."""
    return PARENT_DEATH_SIGNAL and _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _prctl(option: int, value: int) -> bool:
    import ctypes

    return bool(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0)
