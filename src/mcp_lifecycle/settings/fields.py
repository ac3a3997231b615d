"""The lifecycle fields: what the lifecycle commands read of a server's settings, declared once.

`status`, `stop`, `health` and `logs` run in scripts and probes many times a minute. They read
these fields from the settings cache or the registry of running servers, without pydantic; the
full `MCPServerSettings` gives them through `LifecycleFields.of(settings)`. Nothing secret and
nothing of the author's own is among them: both stores may hold them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

# A field's JSON types, by its declared type (bool is never a number here).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "Path": (str,),
}


class LifecycleFields(NamedTuple):
    """The defaults here are the settings' defaults too (`MCPServerSettings` takes them)."""

    server_name: str
    resolved_cache_root: Path
    health_ttl_seconds: float = 60.0
    startup_timeout_seconds: float = 30.0
    stop_timeout_seconds: float = 10.0
    probe_timeout_seconds: float = 5.0
    stale_pid_action: str = "auto_clean"
    host: str = "127.0.0.1"
    log_max_bytes: int = 10_485_760
    log_backup_count: int = 3
    heartbeat_interval: float = 15.0  # a quarter of the TTL
    transport: str | None = None
    port: int | None = None
    url: str | None = None

    @classmethod
    def of(cls, settings: Any) -> LifecycleFields:
        """The lifecycle fields of any settings object that has them (MCPServerSettings)."""
        if isinstance(settings, LifecycleFields):
            return settings
        return cls(**{name: getattr(settings, name) for name in cls._fields})

    def to_json(self) -> dict[str, Any]:
        values = self._asdict()
        values["resolved_cache_root"] = str(self.resolved_cache_root)
        return values

    @classmethod
    def from_json(cls, values: object, server_name: str) -> LifecycleFields | None:
        """The fields stored for `server_name`; None unless each has its JSON type (a store
        written by another version, or by hand, is a miss, never an error)."""
        if not isinstance(values, dict) or values.get("server_name") != server_name:
            return None
        for name, declared in _DECLARED.items():
            value = values.get(name)
            optional = declared.endswith(" | None")
            types = _JSON_TYPES[declared.removesuffix(" | None")]
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, types):
                return None
        known = {name: values[name] for name in cls._fields if name in values}
        known["resolved_cache_root"] = Path(known["resolved_cache_root"])
        return cls(**known)


# Each field's declared type, as written (`from __future__ import annotations` makes it a
# string, which NamedTuple wraps in a ForwardRef).
_DECLARED: dict[str, str] = {
    name: getattr(declared, "__forward_arg__", str(declared))
    for name, declared in LifecycleFields.__annotations__.items()
}


def default(name: str) -> Any:
    """The default of a lifecycle setting."""
    return LifecycleFields._field_defaults[name]
