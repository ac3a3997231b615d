"""Reading a YAML document with PyYAML, fast on any input and clear on a bad one.

libyaml's parser (PyYAML's C loaders) where PyYAML was built with it: linear, and with a
nesting limit of its own, where the pure-Python one spends seconds on a file of 10,000
brackets (its scanner is quadratic there) and then overflows Python's stack. For a file that
fails, PyYAML's own parser reads it again to say what is wrong: libyaml says less
(`found undefined alias`, not which one).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

# A failed file up to this size is read again by PyYAML's parser, for its clearer message.
_EXPLAINED_UP_TO = 256 * 1024


class TooDeep(Exception):
    """The document nests deeper than a parser can follow."""


def compose_document(text: str, loader_class: Callable[[bool], type[Any]]) -> tuple[Any, Any]:
    """The document's root node (for line numbers) and its value. `loader_class(fast)` gives
    the loader: fast, one built on libyaml's; else one built on PyYAML's Python parser.
    Raises TooDeep, or PyYAML's YAMLError for a document that is not valid."""
    import yaml

    try:
        return _compose(loader_class(True), text)
    except RecursionError:
        raise TooDeep from None
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):
            raise TooDeep from None
        if len(text) > _EXPLAINED_UP_TO:
            raise  # PyYAML's parser would take seconds on it: libyaml's word, then
        try:
            _compose(loader_class(False), text)  # raises the clearer YAMLError
        except yaml.YAMLError:
            raise
        except Exception:  # noqa: BLE001 - PyYAML fails worse (ValueError, RecursionError)
            raise exc from None
        raise  # only libyaml refused it: its word, then


def where_and_what(exc: Exception, text: str) -> tuple[int | None, str]:
    """The line (1-based, if known) and the problem a YAMLError of `text` names."""
    import yaml

    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
    return line, getattr(exc, "problem", None) or str(exc).splitlines()[0]


@functools.cache
def safe_loader(fast: bool) -> type[Any]:
    """PyYAML's safe loader (on libyaml when `fast` and PyYAML has it), except that a value
    Python cannot hold (`2024-02-30`, a number of 5000 digits) is a YAMLError with its place,
    not a ValueError."""
    import yaml
    from yaml.constructor import ConstructorError

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader

    class Loader(base):  # type: ignore[valid-type,misc]
        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except (ValueError, OverflowError) as exc:
                raise ConstructorError(None, None, str(exc), node.start_mark) from None

    return Loader


def _compose(loader_class: type[Any], text: str) -> tuple[Any, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
