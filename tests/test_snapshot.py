from __future__ import annotations

import errno
import json
import os
import time
import weakref
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_lifecycle import (
    RuntimeHealthSnapshot,
    get_snapshot_age_seconds,
    is_snapshot_fresh,
    load_runtime_health,
    write_runtime_health,
)
from mcp_lifecycle.files.identity import boot_id
from mcp_lifecycle.files.snapshot import (
    never_ready,
    seconds_since,
    update_runtime_health,
    uptime_seconds,
    utc_now_iso,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)
snapshot_like = st.dictionaries(
    st.sampled_from(RuntimeHealthSnapshot._FIELDS) | st.text(max_size=5),
    json_values,
    max_size=12,
)


@given(snapshot_like)
def test_from_dict_takes_only_well_typed_fields(data: dict[str, Any]) -> None:
    snapshot = RuntimeHealthSnapshot.from_dict(data)
    assert snapshot.state in (None, "starting", "ready", "stopping", "stopped", "failed")
    assert isinstance(snapshot.watchers_running, bool)
    assert isinstance(snapshot.lifecycle_state, dict)
    assert snapshot.pid is None or (
        isinstance(snapshot.pid, int) and not isinstance(snapshot.pid, bool)
    )
    json.dumps(snapshot.as_dict())  # always serialisable again


@given(st.binary(max_size=300))
def test_load_never_raises_on_any_bytes(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runtime_health.json"
        path.write_bytes(data)
        assert isinstance(load_runtime_health(path), RuntimeHealthSnapshot)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "runtime_health.json"
    snapshot = RuntimeHealthSnapshot(
        orchestrator_pid=5, pid=5, state="ready", watchers_running=True
    )
    snapshot.touch()
    write_runtime_health(path, snapshot)
    assert load_runtime_health(path) == snapshot
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_timestamps_are_utc_iso_8601_as_datetime_writes_them() -> None:
    before = datetime.now(UTC)
    stamp = utc_now_iso()
    after = datetime.now(UTC)
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0)
    assert before - timedelta(milliseconds=1) <= parsed <= after
    assert len(stamp) == len("2026-11-27T17:18:37.271336+00:00")


def test_seconds_since_reads_any_iso_time_and_refuses_the_rest() -> None:
    ten_ago = datetime.now(UTC) - timedelta(seconds=10)
    for stamp in (ten_ago.isoformat(), ten_ago.replace(tzinfo=None).isoformat()):
        # A time without an offset is UTC, as the snapshot's writer meant it (no TypeError).
        assert 9 < (seconds_since(stamp) or 0) < 60
    local = ten_ago.astimezone(timezone(timedelta(hours=5)))
    assert 9 < (seconds_since(local.isoformat()) or 0) < 60
    assert seconds_since("yesterday") is None


def test_uptime_comes_from_the_monotonic_clock_on_the_same_boot() -> None:
    now = time.monotonic()
    snapshot = RuntimeHealthSnapshot(started_monotonic=now - 30, boot_id=boot_id())
    # The wall-clock time says otherwise: on this boot the monotonic one decides.
    snapshot.started_at = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    assert 29 < (uptime_seconds(snapshot) or 0) < 60
    for other in ("another-boot", None):  # no boot id: the monotonic time proves nothing
        snapshot.boot_id = other
        assert 5 * 3600 - 1 < (uptime_seconds(snapshot) or 0) < 5 * 3600 + 60
    snapshot.started_at = None
    assert uptime_seconds(snapshot) is None


def test_a_snapshot_behaves_as_the_dataclass_it_was() -> None:
    # Constructed by keyword or position, compared by value, printed with its fields, and its
    # dicts copied out by as_dict: what code written against the dataclass relied on.
    one = RuntimeHealthSnapshot(5, state="ready", probe={"ok": True})
    assert one == RuntimeHealthSnapshot(orchestrator_pid=5, state="ready", probe={"ok": True})
    assert one != RuntimeHealthSnapshot(orchestrator_pid=5, state="stopped")
    assert one != {"orchestrator_pid": 5}
    assert "state='ready'" in repr(one)
    assert repr(one).startswith("RuntimeHealthSnapshot(")
    data = one.as_dict()
    assert list(data) == list(RuntimeHealthSnapshot._FIELDS)
    data["probe"]["ok"] = False
    data["lifecycle_state"]["state"] = "changed"
    assert one.probe == {"ok": True}
    assert one.lifecycle_state == {}
    assert RuntimeHealthSnapshot().lifecycle_state is not RuntimeHealthSnapshot().lifecycle_state
    match one:
        case RuntimeHealthSnapshot(5, None, False):
            pass
        case _:
            pytest.fail("positional patterns match the fields in order")
    assert weakref.ref(one)() is one
    with pytest.raises(TypeError):
        hash(one)
    with pytest.raises(TypeError):
        RuntimeHealthSnapshot(no_such_field=1)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        one.no_such_field = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"state": "exploded"}']
)
def test_corrupt_files_give_an_empty_snapshot(tmp_path: Path, content: bytes, caplog: Any) -> None:
    path = tmp_path / "runtime_health.json"
    path.write_bytes(content)
    snapshot = load_runtime_health(path)
    assert snapshot.state is None
    assert snapshot.pid is None


def test_missing_huge_symlinked_and_directory_snapshots(tmp_path: Path) -> None:
    assert load_runtime_health(tmp_path / "missing.json") == RuntimeHealthSnapshot()
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * 1_100_000)
    assert load_runtime_health(huge) == RuntimeHealthSnapshot()
    target = tmp_path / "target.json"
    target.write_text('{"state": "ready"}')
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert load_runtime_health(link).state is None
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert load_runtime_health(folder) == RuntimeHealthSnapshot()
    with pytest.raises(Exception, match="symlink"):
        write_runtime_health(link, RuntimeHealthSnapshot())
    assert target.read_text() == '{"state": "ready"}'


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # A full disk cannot be arranged here, so the system call is made to fail as it would.
    path = tmp_path / "runtime_health.json"
    write_runtime_health(path, RuntimeHealthSnapshot(state="ready"))
    before = path.read_bytes()

    def enospc(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, enospc)
    with pytest.raises(OSError, match="No space"):
        write_runtime_health(path, RuntimeHealthSnapshot(state="stopped"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runtime_health.json"]


def test_update_keeps_other_writers_fields(tmp_path: Path) -> None:
    path = tmp_path / "runtime_health.json"
    update_runtime_health(path, lambda s: setattr(s, "probe", {"ok": True}))
    update_runtime_health(path, lambda s: setattr(s, "state", "ready"))
    snapshot = load_runtime_health(path)
    assert snapshot.probe == {"ok": True}
    assert snapshot.state == "ready"


def test_age_and_freshness_on_the_monotonic_clock() -> None:
    snapshot = RuntimeHealthSnapshot()
    assert get_snapshot_age_seconds(snapshot) is None
    assert not is_snapshot_fresh(snapshot, 60)
    snapshot.touch()
    age = get_snapshot_age_seconds(snapshot)
    assert age is not None
    assert 0 <= age < 1
    assert is_snapshot_fresh(snapshot, 60)
    # A wall-clock timestamp far in the past does not matter on the writer's boot.
    snapshot.updated_at = "2000-01-01T00:00:00+00:00"
    assert is_snapshot_fresh(snapshot, 60)
    assert snapshot.updated_monotonic is not None
    snapshot.updated_monotonic = time.monotonic() - 120
    assert not is_snapshot_fresh(snapshot, 60)


def test_age_on_the_wall_clock_for_another_boot() -> None:
    now = datetime.now(UTC)
    snapshot = RuntimeHealthSnapshot(
        updated_at=(now - timedelta(seconds=30)).isoformat(), boot_id="other", updated_monotonic=1.0
    )
    age = get_snapshot_age_seconds(snapshot)
    assert age is not None
    assert 29 < age < 32
    assert is_snapshot_fresh(snapshot, 60)
    assert not is_snapshot_fresh(snapshot, 10)
    snapshot.updated_at = (now + timedelta(hours=1)).isoformat()
    assert not is_snapshot_fresh(snapshot, 60), "a timestamp in the future is not fresh"
    snapshot.updated_at = "yesterday"
    assert get_snapshot_age_seconds(snapshot) is None
    naive = RuntimeHealthSnapshot(updated_at=now.replace(tzinfo=None).isoformat())
    naive_age = get_snapshot_age_seconds(naive)
    assert naive_age is not None
    assert abs(naive_age) < 2


@pytest.mark.parametrize(
    ("content", "never"),
    [
        (None, False),  # no snapshot
        (b"{not json", False),
        (b"[]", False),
        (b'{"state": "stopped"}', False),  # an older version's: no ready_at, says nothing
        (b'{"state": "failed", "ready_at": null}', True),
        (b'{"state": "stopped", "ready_at": "2026-11-27T15:00:00+00:00"}', False),
    ],
)
def test_never_ready_only_when_the_snapshot_says_so(
    tmp_path: Path, content: bytes | None, never: bool
) -> None:
    path = tmp_path / "runtime_health.json"
    if content is not None:
        path.write_bytes(content)
    assert never_ready(path) is never


def test_never_ready_does_not_follow_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text('{"ready_at": null}')
    (tmp_path / "runtime_health.json").symlink_to(target)
    assert never_ready(tmp_path / "runtime_health.json") is False
