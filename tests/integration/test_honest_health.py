"""Health must mean the server works: a blocked event loop is not healthy, however alive the
heartbeat thread is."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import anyio

from tests.conftest import CLI_POLL, TESTS, Lifecycle, free_port, wait_for


def test_a_blocked_event_loop_goes_stale_and_recovers(lifecycle: Lifecycle, tmp_path: Path) -> None:
    lifecycle.script = TESTS / "servers" / "slow_mcp.py"
    address = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(address)
    notify.settimeout(0.1)
    lifecycle.set_env(
        MCP_SERVER_PORT=str(free_port()),
        MCP_SERVER_HEALTH_TTL_SECONDS="2",
        NOTIFY_SOCKET=address,
        WATCHDOG_USEC="1000000",  # a heartbeat every 0.5 s
    )
    started = lifecycle.run("start", "--json")
    assert started.code == 0, started.err
    url = started.json()["url"]

    def watchdogs() -> int:
        count = 0
        while True:
            try:
                count += notify.recv(100) == b"WATCHDOG=1"
            except TimeoutError:
                return count

    unblock = lifecycle.marks / "unblock"
    blocking = lifecycle.marks / "blocking"

    async def block(seconds: float) -> None:
        async with lifecycle.client(url) as client:
            arguments = {"seconds": seconds, "until": str(unblock), "started": str(blocking)}
            await client.call_tool("block", arguments)

    try:
        assert lifecycle.run("status").code == 0
        caller = threading.Thread(target=anyio.run, args=(block, 60.0))
        caller.start()
        # From when the loop is blocked (the client's connect may take a while on a loaded
        # machine), past one heartbeat: the heartbeat no longer vouches.
        assert wait_for(blocking.exists, timeout=20)
        time.sleep(1.5)
        watchdogs()  # what was sent before
        # Stale within TTL (2 s) + one heartbeat (0.5 s) of the block, with room for a slow CI.
        assert wait_for(lambda: lifecycle.run("status").code == 4, timeout=3.5, interval=CLI_POLL)
        report = lifecycle.run("status", "--json").json()
        assert report["loop_blocked_seconds"] > 1
        assert "event loop has not turned" in lifecycle.run("status").out
        assert lifecycle.run("health").code == 4
        assert watchdogs() == 0, "systemd's watchdog was fed while the loop was blocked"
        unblock.touch()
        caller.join(timeout=20)
        # It recovers by itself once the loop turns again.
        assert wait_for(lambda: lifecycle.run("status").code == 0, timeout=5, interval=CLI_POLL)
        assert lifecycle.run("status", "--json").json()["loop_blocked_seconds"] is None
        assert wait_for(lambda: watchdogs() > 0, timeout=3)
    finally:
        assert lifecycle.run("stop").code == 0
        notify.close()
