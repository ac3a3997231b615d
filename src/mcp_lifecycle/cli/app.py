"""What `create_app()` returns: a Typer app in every way authors and tools use one, which runs
the hot commands itself.

`status`, `health` and `stop` run in shell prompts, scripts and probes every few seconds; Typer,
Click and Rich cost more than the work they do. So the Typer app is built only when something
needs it: help, errors, the other commands, an author's own, anything unusual (`cli.fast`
decides, and answers only what it can answer exactly as Typer would). Until then, what authors
register (`@app.command()`, `app.callback()`, `app.add_typer()`) is kept and handed to the
Typer app when it is built; anything else asked of the app builds it and is answered by it, and
`isinstance(app, typer.Typer)` holds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

# The hot commands: those `cli.fast` may answer without Typer.
HOT = frozenset({"status", "health", "stop"})


def takes_hot_name(name: str | None, function_name: str) -> bool:
    """Would a command registered so be one of the hot ones? Named as Typer names it: the
    name given, else the function's, lower case, '_' as '-'."""
    return (name if name is not None else function_name.lower().replace("_", "-")) in HOT


class LifecycleApp:
    _build: Callable[[], typer.Typer]
    _fast: Callable[[list[str]], int | None]
    _typer: typer.Typer | None
    _kept: list[tuple[str, tuple[Any, ...], dict[str, Any], Callable[..., Any] | None]]
    _shadowed: bool

    def __init__(
        self, build: Callable[[], typer.Typer], fast: Callable[[list[str]], int | None]
    ) -> None:
        # Set through __dict__: __getattr__ must never see these missing.
        self.__dict__["_build"] = build
        self.__dict__["_fast"] = fast
        self.__dict__["_typer"] = None
        self.__dict__["_kept"] = []  # (method, args, kwargs, decorated or None), in order
        self.__dict__["_shadowed"] = False  # an author's registration took a hot name

    # -- what authors register before the app is built -------------------------------------

    def command(self, name: str | None = None, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        if self._typer is not None:
            return self._typer.command(name, *args, **kwargs)

        def keep(function: Callable[..., Any]) -> Callable[..., Any]:
            if takes_hot_name(name, function.__name__):
                self.__dict__["_shadowed"] = True
            self._kept.append(("command", (name, *args), kwargs, function))
            return function

        return keep

    def callback(self, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        if self._typer is not None:
            return self._typer.callback(*args, **kwargs)

        def keep(function: Callable[..., Any]) -> Callable[..., Any]:
            self.__dict__["_shadowed"] = True  # the root options are no longer ours
            self._kept.append(("callback", args, kwargs, function))
            return function

        return keep

    def add_typer(self, *args: Any, **kwargs: Any) -> None:
        if self._typer is not None:
            self._typer.add_typer(*args, **kwargs)
            return
        if kwargs.get("name") is None or kwargs["name"] in HOT:  # unnamed: its commands may be
            self.__dict__["_shadowed"] = True
        self._kept.append(("add_typer", args, kwargs, None))

    # -- running it --------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Once built, the Typer app may have been changed in ways we cannot see: it decides.
        if not args and not kwargs and not self._shadowed and self._typer is None:
            code = self._fast(sys.argv[1:])
            if code is not None:
                sys.exit(code)
        try:
            app = self.typer_app
        except Exception as exc:  # noqa: BLE001 - an author's import string, say: one line
            from mcp_lifecycle.cli.outcome import report_failure

            code = report_failure(exc, as_json=False)
            sys.exit(1 if code is None else code)
        return app(*args, **kwargs)

    @property
    def built(self) -> bool:
        return self._typer is not None

    @property
    def typer_app(self) -> typer.Typer:
        """The Typer app, built on first use with everything registered so far."""
        if self._typer is not None:
            return self._typer
        app = self._build()
        for method, args, kwargs, decorated in self._kept:
            registered = getattr(app, method)(*args, **kwargs)
            if decorated is not None:
                registered(decorated)
        self.__dict__["_typer"] = app
        return app

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.typer_app, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.typer_app, name, value)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """`isinstance(app, typer.Typer)` holds (it asks `__class__` when the type says no)."""
        return type(self.typer_app)
