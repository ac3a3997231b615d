"""What a supervisor records for `status`: who it is, its policy, the restarts since `start`,
the server's last exit and, once it gave up, why.

Written atomically by the supervisor whenever it changes; read tolerantly (a file someone
else wrote, or one torn by a crash, reads as none).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from mcp_lifecycle.errors import LifecycleError
from mcp_lifecycle.files.private import atomic_write, read_no_follow

_MAX_BYTES = 65536


class SupervisionRecord(NamedTuple):
    supervisor_pid: int
    policy: str
    restarts: int = 0
    server_pid: int | None = None
    # How the server last ended: its exit code or signal, when, and how long it had run.
    last_exit: dict[str, Any] | None = None
    reason: str | None = None  # set once the supervisor gave up

    def to_json(self) -> bytes:
        return json.dumps(self._asdict(), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: object) -> SupervisionRecord | None:
        if not isinstance(data, dict):
            return None
        pid, policy, restarts = data.get("supervisor_pid"), data.get("policy"), data.get("restarts")
        server, last_exit, reason = (
            data.get("server_pid"),
            data.get("last_exit"),
            data.get("reason"),
        )
        if (
            type(pid) is not int
            or not isinstance(policy, str)
            or type(restarts) is not int
            or (server is not None and type(server) is not int)
            or (last_exit is not None and not isinstance(last_exit, dict))
            or (reason is not None and not isinstance(reason, str))
        ):
            return None
        return cls(pid, policy, restarts, server, last_exit, reason)


def write_record(path: Path, record: SupervisionRecord) -> None:
    atomic_write(path, record.to_json())


def read_record(path: Path) -> SupervisionRecord | None:
    try:
        data = read_no_follow(path, _MAX_BYTES)
        return SupervisionRecord.from_json(json.loads(data)) if data else None
    except (OSError, LifecycleError, ValueError):
        return None


def remove_record(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
