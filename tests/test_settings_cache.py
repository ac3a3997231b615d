"""The settings cache keeps what a fleet reads, in turn, from one run to the next."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_lifecycle.settings import cache
from mcp_lifecycle.settings.fields import LifecycleFields


def test_a_hundred_servers_read_in_turn_all_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in the same order every time, 100 entries in a cache that kept 64 were each evicted
    before their next use: every `status` of a fleet resolved all of them again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    keys = [f"key-{n}" for n in range(100)]
    for n, key in enumerate(keys):
        fields = LifecycleFields(server_name=f"s{n}", resolved_cache_root=tmp_path / f"s{n}")
        cache.store(key, fields, [])
    hits = [cache.load(key, f"s{n}") for n, key in enumerate(keys)]
    assert all(hit is not None for hit in hits)
    assert [hit.server_name for hit in hits if hit] == [f"s{n}" for n in range(100)]


def test_the_least_recently_used_go_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_KEEP", 3)
    monkeypatch.setattr(cache, "_PRUNE_AT", 4)

    def fields(n: int) -> LifecycleFields:
        return LifecycleFields(server_name=f"s{n}", resolved_cache_root=tmp_path / f"s{n}")

    for n in range(4):
        cache.store(f"k{n}", fields(n), [])
        _age(cache.cache_dir(), n)
    assert cache.load("k0", "s0") is not None  # used now: the newest
    cache.store("k4", fields(4), [])  # five entries: pruned to three
    kept = {n for n in range(5) if cache.load(f"k{n}", f"s{n}") is not None}
    assert kept == {0, 3, 4}


def _age(directory: Path, order: int) -> None:
    """Make the entries' times distinct (a coarse clock could give two the same)."""
    import os

    for entry in directory.iterdir():
        st = entry.stat()
        if st.st_mtime > 1_000_000_000 + 10 * order:
            os.utime(entry, (st.st_atime, 1_000_000_000 + 10 * order))
