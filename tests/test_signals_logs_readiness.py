from __future__ import annotations

import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from mcp_lifecycle import SignalHandler, configure_logging, notify_ready
from mcp_lifecycle.server.readiness import sd_notify, set_current


def test_signal_handler_routes_and_restores() -> None:
    calls: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with SignalHandler(lambda: calls.append("stop"), lambda: calls.append("reload")) as handler:
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert calls == ["reload", "stop", "stop"]
        assert handler.received == [signal.SIGHUP, signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) == before


def test_signal_handler_without_reload_leaves_sighup_alone() -> None:
    before = signal.getsignal(signal.SIGHUP)
    handler = SignalHandler(lambda: None).install()
    try:
        assert signal.getsignal(signal.SIGHUP) == before
    finally:
        handler.restore()


def test_shutdown_callback_may_raise_to_unwind() -> None:
    class Stop(BaseException):
        pass

    def stop() -> None:
        raise Stop

    with SignalHandler(stop), pytest.raises(Stop):  # noqa: PT012 - the signal must land inside
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()


def test_configure_logging_json_and_file(tmp_path: Path, capsys: Any) -> None:
    log_file = tmp_path / "logs" / "server.log"
    logger = configure_logging("debug", log_file, json_format=True)
    try:
        logger.debug("hello %s", "world", extra={"request_id": 7})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["message"] == "hello world"
        assert record["level"] == "DEBUG"
        assert record["logger"] == "mcp_lifecycle"
        assert record["request_id"] == 7
        assert record["pid"] == os.getpid()
        assert json.loads(log_file.read_text().strip().splitlines()[-1])["message"] == "hello world"
        assert oct(log_file.stat().st_mode & 0o777) == "0o600"
        # Calling again replaces our handlers instead of adding more.
        configure_logging("INFO")
        ours = [
            h for h in logging.getLogger().handlers if getattr(h, "_mcp_lifecycle_handler", False)
        ]
        assert len(ours) == 1
    finally:
        configure_logging("WARNING")


def test_configure_logging_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError):
        configure_logging("LOUD")


def test_json_formatter_includes_exceptions(capsys: Any) -> None:
    logger = configure_logging("INFO", json_format=True)
    try:
        try:
            raise RuntimeError("bad")
        except RuntimeError:
            logger.exception("failed", extra={"obj": object()})
        record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert "RuntimeError: bad" in record["exception"]
        assert record["obj"].startswith("<object")
    finally:
        configure_logging("WARNING")


def test_sd_notify_sends_a_datagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        server.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        assert sd_notify("STATUS=hi")
        assert server.recv(100) == b"STATUS=hi"
        notify_ready()  # no runtime in this process: straight to systemd
        assert server.recv(100) == b"READY=1"


def test_sd_notify_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"mcp-lifecycle-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("READY=1")
        assert server.recv(100) == b"READY=1"


def test_sd_notify_without_or_with_a_dead_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sd_notify("READY=1") is False


def test_notify_ready_calls_the_runtime() -> None:
    calls: list[int] = []

    class Runtime:
        def mark_ready(self) -> None:
            calls.append(1)

    set_current(Runtime())
    try:
        notify_ready()
        notify_ready()
    finally:
        set_current(None)
    assert calls == [1, 1]


def test_the_server_log_rotates_in_the_held_folder_until_it_is_released(tmp_path: Path) -> None:
    """While the server holds its cache root, its log's rotations go through the folder's
    descriptor; once it lets go, through the path again (the descriptor's number may be
    reused for another folder)."""
    from mcp_lifecycle.files.log_files import OutputLogHandler
    from mcp_lifecycle.files.paths import ServerPaths
    from mcp_lifecycle.files.private import ensure_cache_root
    from mcp_lifecycle.server.claim import ServerClaim

    cache = tmp_path / "cache"
    ensure_cache_root(cache)
    configure_logging("INFO", output_log=cache / "t.log")
    try:
        (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, OutputLogHandler)]
        claim = ServerClaim(ServerPaths("t", cache))
        claim.take()
        try:
            assert handler.baseFilename.startswith("/proc/self/fd/")
            assert os.path.samefile(os.path.dirname(handler.baseFilename), cache)
        finally:
            claim.release()
        assert handler.baseFilename == str(cache / "t.log")
    finally:
        configure_logging("WARNING")
