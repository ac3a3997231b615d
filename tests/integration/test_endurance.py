"""Long runs: log rotation under load, and a server under a stream of MCP requests."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import psutil
import pytest

from tests.conftest import TESTS, Lifecycle, free_port

ROTATIONS = 500
# The load run's length: a minute by default, 10 s in `scripts/test.sh` (CI), as long as you like
# with MCP_LIFECYCLE_ENDURANCE_SECONDS; `-m "not endurance"` skips it.
LOAD_SECONDS = float(os.environ.get("MCP_LIFECYCLE_ENDURANCE_SECONDS", "60"))

pytestmark = [pytest.mark.endurance, pytest.mark.repetitive]


def test_500_rotations_lose_no_line_and_leak_no_fd(lifecycle: Lifecycle) -> None:
    # ~100-byte lines, 1 KiB files: 10 lines a file, so 5,000 lines rotate 500 times.
    lines = ROTATIONS * 10
    lifecycle.set_env(
        TOY_MODE="chatty",
        TOY_LINES=str(lines),
        MCP_SERVER_LOG_MAX_BYTES="1024",
        MCP_SERVER_LOG_BACKUP_COUNT=str(ROTATIONS * 2),
    )
    # Python's handler looks for every possible backup at each rotation (1,000 of them here),
    # all before the server is ready: seconds on an idle machine, much more on a loaded one.
    started = lifecycle.run("start", "--timeout", "240", timeout=300)
    assert started.code == 0, started.err
    pid = lifecycle.pid()
    fds_after_start = psutil.Process(pid).num_fds()
    assert lifecycle.run("stop").code == 0
    files = list(lifecycle.cache_root.glob("toy.log*"))
    assert len(files) > ROTATIONS
    text = "".join(path.read_text() for path in files)
    missing = [i for i in range(lines) if f"line {i:05d}" not in text]
    assert not missing, f"{len(missing)} log lines lost, first {missing[:5]}"
    missing_prints = [i for i in range(lines) if f"print {i:05d}" not in text]
    assert not missing_prints
    # The chatty server logs before it is ready: its fd count after all rotations must be what
    # a server has at rest, not one more per rotation.
    assert fds_after_start < 30


def test_a_long_run_under_load_with_a_thousand_readers(lifecycle: Lifecycle) -> None:
    lifecycle.script = TESTS / "servers" / "slow_mcp.py"
    # Four snapshots a second, each reader looking once a second: as many reads meet a write as
    # with a write a second and four looks, with a quarter of the threads' wake-ups (each a
    # fight for the GIL: 16 s of CPU for the run against 8). Written in place instead of
    # renamed, the snapshot is seen half-written a dozen times or more in 10 s either way.
    lifecycle.set_env(MCP_SERVER_PORT=str(free_port()), MCP_SERVER_HEARTBEAT_SECONDS="0.25")
    started = lifecycle.run("start", "--json")
    assert started.code == 0, started.err
    try:
        _load_with_readers(lifecycle, started.json()["url"], started.json()["pid"])
    finally:
        assert lifecycle.run("stop").code == 0


def _load_with_readers(lifecycle: Lifecycle, url: str, pid: int) -> None:
    server = psutil.Process(pid)
    fds_before = server.num_fds()
    deadline = time.monotonic() + LOAD_SECONDS
    requests = 0
    torn: list[str] = []
    readers_done = threading.Event()

    async def load() -> int:
        count = 0
        async with lifecycle.client(url) as client:
            while time.monotonic() < deadline:
                await client.call_tool("now", {})
                count += 1
                # A steady stream, not a flood: the point is a long run with traffic and
                # readers, and a flood would only take the CPU from the other tests.
                await anyio.sleep(0.02)
        return count

    def read_snapshot(_: int) -> None:
        while not readers_done.is_set():
            text = lifecycle.snapshot_file.read_text()
            try:
                json.loads(text)
            except ValueError:
                torn.append(text)
            time.sleep(1)

    with ThreadPoolExecutor(max_workers=1000) as pool:
        readers = [pool.submit(read_snapshot, i) for i in range(1000)]
        try:
            requests = anyio.run(load)
        finally:
            readers_done.set()
        for reader in readers:
            reader.result()
    # Every call was answered (a failed one raises); how many fit in the time is the machine's
    # business (the readers share this process's GIL with the client): bench/ measures speed.
    assert requests > 0
    assert not torn, f"{len(torn)} half-written snapshots seen"
    assert server.num_fds() <= fds_before + 2, "file descriptors leaked"
    assert lifecycle.run("status").code == 0
