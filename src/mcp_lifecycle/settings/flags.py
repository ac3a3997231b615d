"""Settings given on the command line: the top layer of the settings.

A detached `start` hands them to the server it spawns (as JSON in its environment), so that
both resolve the same settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any


class Flags:
    """Setting values given as flags, and the flag that gave each (for messages)."""

    __slots__ = ("given_as", "values")

    def __init__(
        self, values: dict[str, Any] | None = None, given_as: dict[str, str] | None = None
    ) -> None:
        self.values: dict[str, Any] = {} if values is None else values
        self.given_as: dict[str, str] = {} if given_as is None else given_as

    def __repr__(self) -> str:
        return f"Flags({self.values!r}, {self.given_as!r})"

    def set(self, name: str, value: Any, flag: str) -> None:
        self.values[name] = value
        self.given_as[name] = flag

    def to_json(self) -> str:
        return json.dumps({"values": self.values, "given_as": self.given_as}, default=str)

    @classmethod
    def from_json(cls, text: str) -> Flags:
        data = json.loads(text or "{}")
        return cls(dict(data.get("values", {})), dict(data.get("given_as", {})))

    def merged(self, other: Flags) -> Flags:
        return Flags({**self.values, **other.values}, {**self.given_as, **other.given_as})


# The global flags of the command running now, for code that has no Typer context at hand
# (`factory.load_settings()` inside an author's command).
_invocation: ContextVar[Flags | None] = ContextVar("_invocation", default=None)


def remember_invocation(flags: Flags) -> Callable[[], None]:
    """Make `flags` this command's; call what it returns when the command ends (a process that
    runs several commands, as tests do, must not lend one command's flags to the next)."""
    token = _invocation.set(flags)
    return lambda: _invocation.reset(token)


def current_invocation() -> Flags | None:
    """The flags of the command running now; None outside a command."""
    return _invocation.get()


def invocation_flags() -> Flags:
    """The global flags of the command running now; none outside a command."""
    return _invocation.get() or Flags()
