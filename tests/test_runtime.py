"""The server runtime in this process: the paths that real processes cannot time reliably."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from mcp_lifecycle import MCPServerSettings, notify_ready
from mcp_lifecycle.errors import AlreadyRunning, LifecycleError
from mcp_lifecycle.files.pidfile import ServerLock
from mcp_lifecycle.server.runtime import ServerRuntime, ShutdownRequested, current_runtime
from mcp_lifecycle.settings.model import load_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MCPServerSettings:
    monkeypatch.chdir(tmp_path)
    return load_settings(
        MCPServerSettings, "inproc", {"cache_root": tmp_path / "cache", "heartbeat_seconds": 0.05}
    )


def test_current_runtime_outside_a_server() -> None:
    with pytest.raises(LifecycleError, match="no server runtime"):
        current_runtime()


def test_already_running_is_reported_on_the_ready_pipe(settings: MCPServerSettings) -> None:
    root = settings.resolved_cache_root
    root.mkdir(mode=0o700)
    lock = ServerLock(root / "inproc.lock")
    assert lock.acquire()
    read_fd, write_fd = os.pipe()
    try:
        runtime = ServerRuntime(settings, lambda: None, ready_fd=write_fd)
        with pytest.raises(AlreadyRunning):
            runtime.run()
        assert os.read(read_fd, 100).startswith(b"FAILED 3 inproc is already running")
    finally:
        lock.release()
        os.close(read_fd)


def test_repeat_signals_during_shutdown_only_count(settings: MCPServerSettings) -> None:
    seen: list[int] = []

    def handler() -> None:
        runtime = current_runtime()
        notify_ready()
        runtime._on_shutdown_signal()

    def handler_with_repeats() -> None:
        try:
            handler()
        except ShutdownRequested:
            runtime = current_runtime()
            runtime._on_shutdown_signal()
            seen.append(runtime._shutdown_signals)
            raise

    ServerRuntime(settings, handler_with_repeats).run()
    assert seen == [2]


def test_signal_during_cleanup_is_ignored(settings: MCPServerSettings) -> None:
    runtime_box: list[ServerRuntime] = []

    def reload_settings() -> MCPServerSettings:
        return settings

    def handler() -> None:
        runtime_box.append(current_runtime())
        notify_ready()

    runtime = ServerRuntime(settings, handler, reload_settings=reload_settings)
    original = runtime._write_snapshot

    def write_and_signal(final: bool = False, wait: float = -1, vouch: bool = True) -> None:
        if final:
            os.kill(os.getpid(), signal.SIGTERM)  # lands while cleanup runs
        original(final, wait, vouch)

    runtime._write_snapshot = write_and_signal  # type: ignore[method-assign]
    runtime.run()  # returns normally: the server stopped on its own after being ready
    assert runtime._shutdown_signals == 1


def test_graceful_stop_gets_force_on_the_second_signal(settings: MCPServerSettings) -> None:
    calls: list[bool] = []

    def handler() -> None:
        runtime = current_runtime()
        runtime.set_graceful_stop(calls.append)
        notify_ready()
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)

    ServerRuntime(settings, handler).run()
    assert calls == [False, True]


def test_failure_before_the_heartbeat_starts(
    settings: MCPServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mcp_lifecycle.server.claim as claim_module

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(claim_module, "write_pid_file", no_space)
    with pytest.raises(LifecycleError, match=r"No space left on device: .*inproc\.pid"):
        ServerRuntime(settings, lambda: None).run()
    lock = ServerLock(settings.resolved_cache_root / "inproc.lock")
    assert lock.acquire(wait_seconds=0), "the lock is released after a failed start"
    lock.release()


def test_a_token_file_without_a_token_fails_the_start_and_frees_the_lock(
    settings: MCPServerSettings, tmp_path: Path
) -> None:
    empty = tmp_path / "token"
    empty.write_text("")
    broken = settings.model_copy(update={"port": 9, "token_file": empty})
    with pytest.raises(LifecycleError, match="holds no token"):
        ServerRuntime(broken, lambda: None).run()
    lock = ServerLock(settings.resolved_cache_root / "inproc.lock")
    assert lock.acquire(wait_seconds=0), "the lock is released after a failed start"
    lock.release()
