"""The settings cache keeps what a fleet reads, in turn, from one run to the next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _fields(tmp_path: Path) -> LifecycleFields:
    return LifecycleFields(server_name="s", resolved_cache_root=tmp_path / "s")


@pytest.mark.parametrize(
    ("home", "cache_home"),
    [
        ("{tmp}/home", None),  # ~/.cache: found where it is first looked for
        ("{tmp}/home", "{tmp}/xdg-cache"),  # $XDG_CACHE_HOME: likewise
        ("relative-home", None),  # platformdirs decides: found after asking it
        ("{tmp}/home", "relative-cache"),  # a relative XDG_CACHE_HOME is ignored, as XDG says
    ],
)
def test_an_entry_is_found_wherever_platformdirs_put_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    home: str,
    cache_home: str | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", home.format(tmp=tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if cache_home is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", cache_home.format(tmp=tmp_path))
    cache.store("key", _fields(tmp_path), [])
    assert cache.load("key", "s") == _fields(tmp_path)
    likely = cache._likely_cache_dir()
    assert likely is None or likely == cache.cache_dir()


@pytest.fixture
def stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Any]]:
    """One entry stored, its file and what it holds; no state folder known yet."""
    from mcp_lifecycle.files import paths

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(paths, "_state_roots", {})
    cache.store("key", _fields(tmp_path), [])
    entry = next(cache.cache_dir().iterdir())
    return entry, json.loads(entry.read_text())


def test_a_hit_tells_the_state_folder_without_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stored: tuple[Path, dict[str, Any]]
) -> None:
    from mcp_lifecycle.files import paths

    entry, recorded = stored
    assert recorded["state_root"] == str(tmp_path / "state" / "mcp-lifecycle")
    # What the entry says is what the state folder is, for this placement only.
    entry.write_text(json.dumps({**recorded, "state_root": str(tmp_path / "recorded")}))
    assert cache.load("key", "s") is not None
    assert paths.state_root() == tmp_path / "recorded"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "elsewhere"))
    assert paths.state_root() == tmp_path / "elsewhere" / "mcp-lifecycle"


def test_an_entry_without_a_state_folder_still_hits(
    tmp_path: Path, stored: tuple[Path, dict[str, Any]]
) -> None:
    from mcp_lifecycle.files import paths

    entry, recorded = stored
    del recorded["state_root"]  # as an older version wrote it
    entry.write_text(json.dumps(recorded))
    assert cache.load("key", "s") == _fields(tmp_path)
    assert paths.state_root() == tmp_path / "state" / "mcp-lifecycle"


def test_without_a_home_folder_the_cache_still_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No HOME and no passwd entry: platformdirs cannot place the state folder (RuntimeError).
    # A command whose cache root is given still runs, from the cache, as it did.
    import pwd

    from mcp_lifecycle.files import paths

    def no_entry(uid: int) -> Any:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "_state_roots", {})
    with pytest.raises(RuntimeError):
        paths.state_root()
    cache.store("key", _fields(tmp_path), [])
    (entry,) = cache.cache_dir().iterdir()
    assert "state_root" not in json.loads(entry.read_text())
    assert cache.load("key", "s") == _fields(tmp_path)
    monkeypatch.delenv("XDG_CACHE_HOME")
    cache.store("other", _fields(tmp_path), [])  # nowhere to put it: no cache, no error
    assert cache.load("other", "s") is None
