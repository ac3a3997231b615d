"""Reading a YAML document with PyYAML, fast on any input and clear on a bad one.

libyaml's parser (PyYAML's C loaders) where PyYAML was built with it: linear, and with a
nesting limit of its own, where the pure-Python one spends seconds on a file of 10,000
brackets (its scanner is quadratic there) and then overflows Python's stack. For a file that
fails, PyYAML's own parser reads it again to say what is wrong: libyaml says less
(`found undefined alias`, not which one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


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
        try:
            _compose(loader_class(False), text)  # raises the clearer YAMLError
        except RecursionError:
            raise TooDeep from None
        raise  # only libyaml refused it: its word, then


def safe_loader(fast: bool) -> type[Any]:
    """PyYAML's safe loader, on libyaml when `fast` and PyYAML has it."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader


def _compose(loader_class: type[Any], text: str) -> tuple[Any, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
