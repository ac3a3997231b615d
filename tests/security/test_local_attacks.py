"""Attacks a local user or a planted file could make, staged for real: a second user made with
`useradd`, real abstract sockets, symlinks, hard links and folders owned by someone else."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_lifecycle.files.name_socket import address
from tests.conftest import Lifecycle, gone, wait_for
from tests.security.conftest import OtherUser

# Binds an abstract name (hex in argv[1]), says so, and holds it until terminated.
SQUAT = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(bytes.fromhex(sys.argv[1]))
s.listen(16)
print("bound", flush=True)
while True:
    try:
        s.accept()[0].close()
    except OSError:
        time.sleep(0.1)
"""


# Binds the name without listening: connecting to it fails, so it cannot be identified.
SQUAT_SILENTLY = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(bytes.fromhex(sys.argv[1]))
print("bound", flush=True)
while True:
    time.sleep(1)
"""


def _name_of(lifecycle: Lifecycle) -> str:
    return address(lifecycle.cache_root, lifecycle.name).hex()


def test_another_users_hold_on_the_name_never_blocks_start(
    lifecycle: Lifecycle, other_user: OtherUser
) -> None:
    squatter = other_user.popen(other_user.python, "-c", SQUAT, _name_of(lifecycle))
    assert squatter.stdout is not None
    assert squatter.stdout.readline().strip() == "bound"

    started = lifecycle.run("start")
    assert started.code == 0, started
    assert lifecycle.run("status").code == 0
    doctor = lifecycle.run("doctor", "--json")
    name = next(f for f in doctor.json()["checks"] if f["check"] == "name")
    assert name["level"] == "warn"
    assert f"uid {other_user.uid}" in name["detail"]
    assert "another user's process" in name["detail"]
    assert lifecycle.run("stop").code == 0
    assert squatter.poll() is None  # never signalled


def test_a_silent_hold_on_the_name_never_blocks_start(
    lifecycle: Lifecycle, other_user: OtherUser
) -> None:
    squatter = other_user.popen(other_user.python, "-c", SQUAT_SILENTLY, _name_of(lifecycle))
    assert squatter.stdout is not None
    assert squatter.stdout.readline().strip() == "bound"
    doctor = lifecycle.run("doctor", "--json")
    name = next(f for f in doctor.json()["checks"] if f["check"] == "name")
    assert name["level"] == "warn"
    assert "does not answer" in name["detail"]
    assert lifecycle.run("start").code == 0
    assert "bound by a process that does not answer" in lifecycle.log_file.read_text()
    assert lifecycle.run("stop").code == 0
    assert squatter.poll() is None


def test_a_process_that_holds_only_the_name_is_not_the_server(
    lifecycle: Lifecycle, spawn: object
) -> None:
    impostor = spawn(  # type: ignore[operator]
        [sys.executable, "-c", SQUAT, _name_of(lifecycle)], stdout=subprocess.PIPE, text=True
    )
    assert impostor.stdout.readline().strip() == "bound"

    status = lifecycle.run("status", "--json")
    assert status.code == 2, status
    stop = lifecycle.run("stop")
    assert stop.code == 2, stop
    time.sleep(0.3)
    assert impostor.poll() is None, "stop signalled a process that only held the name"

    # A real server still starts beside it, and `stop` ends the server, not the impostor.
    assert lifecycle.run("start").code == 0
    server = lifecycle.pid()
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0
    assert gone(server)
    assert impostor.poll() is None


def test_a_symlink_planted_as_log_file_is_refused_and_its_target_untouched(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    target.chmod(0o644)
    planted = lifecycle.marks / "extra.log"
    planted.symlink_to(target)

    for args in (("start",), ("start", "--foreground")):
        result = lifecycle.run(*args, MCP_SERVER_LOG_FILE=str(planted))
        assert result.code == 6, result
        assert f"{planted} is a symlink" in result.err
        assert "Traceback" not in result.err
    assert target.read_text() == "precious\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert lifecycle.run("status").code == 2


def test_a_hard_link_planted_as_log_file_is_refused(lifecycle: Lifecycle, tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    planted = lifecycle.marks / "extra.log"
    os.link(target, planted)
    result = lifecycle.run("start", MCP_SERVER_LOG_FILE=str(planted))
    assert result.code == 6, result
    assert "hard link" in result.err
    assert target.read_text() == "precious\n"


def test_every_log_file_is_private_from_its_first_byte_through_rotations(
    lifecycle: Lifecycle,
) -> None:
    extra = lifecycle.marks / "logs" / "extra.log"
    started = lifecycle.run(
        "start",
        TOY_MODE="chatty",
        TOY_LINES="300",
        MCP_SERVER_LOG_FILE=str(extra),
        MCP_SERVER_LOG_MAX_BYTES="2048",
        MCP_SERVER_LOG_BACKUP_COUNT="2",
    )
    assert started.code == 0, started
    try:
        made = [
            *lifecycle.cache_root.iterdir(),
            *extra.parent.iterdir(),
        ]
        logs = [path for path in made if ".log" in path.name]
        assert any(path.name.endswith(".log.2") for path in logs), logs  # it rotated
        for path in made:
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode == 0o600, f"{path} has mode {mode:03o}"
        assert stat.S_IMODE(extra.parent.stat().st_mode) == 0o700
    finally:
        assert lifecycle.run("stop").code == 0


def test_a_cache_root_under_another_users_folder_is_refused(
    lifecycle: Lifecycle, other_user: OtherUser, tmp_path: Path
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, other_user.uid, other_user.gid)
    cache_root = theirs / "cache"
    result = lifecycle.run("start", MCP_SERVER_CACHE_ROOT=str(cache_root))
    assert result.code == 6, result
    assert f"{theirs}, a folder above the cache root" in result.err
    assert f"owned by uid {other_user.uid}" in result.err
    assert list(theirs.iterdir()) == []  # nothing created in their folder
    # Had they made it themselves, it would be theirs: refused as well.
    cache_root.mkdir(mode=0o700)
    os.chown(cache_root, other_user.uid, other_user.gid)
    planted = lifecycle.run("status", MCP_SERVER_CACHE_ROOT=str(cache_root))
    assert planted.code == 6, planted


@pytest.mark.parametrize(("mode", "allowed"), [(0o777, False), (0o775, False), (0o1777, True)])
def test_a_folder_others_may_write_above_the_cache_root(
    lifecycle: Lifecycle, tmp_path: Path, mode: int, allowed: bool
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    cache_root = shared / "deeper" / "cache"
    result = lifecycle.run("start", MCP_SERVER_CACHE_ROOT=str(cache_root))
    if allowed:  # sticky, as /tmp: only an entry's owner may rename or remove it
        assert result.code == 0, result
        assert lifecycle.run("stop", MCP_SERVER_CACHE_ROOT=str(cache_root)).code == 0
    else:
        assert result.code == 6, result
        assert "writable by others" in result.err
        assert list(shared.iterdir()) == []


@pytest.mark.parametrize("rotating", [False, True], ids=["plain", "log-rotating"])
def test_a_swapped_cache_root_cannot_redirect_the_servers_writes(
    lifecycle: Lifecycle, tmp_path: Path, rotating: bool
) -> None:
    """With a small log limit, the server's own log rotates while the path is swapped: each
    new log file must still be made in the server's folder, not the decoy."""
    lifecycle.set_env(MCP_SERVER_HEARTBEAT_SECONDS="0.1")
    if rotating:
        lifecycle.set_env(MCP_SERVER_LOG_MAX_BYTES="1024", MCP_SERVER_LOG_LEVEL="DEBUG")
    assert lifecycle.run("start").code == 0
    pid = lifecycle.pid()
    moved = tmp_path / "moved"
    decoy = tmp_path / "decoy"
    decoy.mkdir(mode=0o700)
    try:
        lifecycle.cache_root.rename(moved)
        lifecycle.cache_root.symlink_to(decoy)
        swapped = time.time()
        before = json.loads((moved / "runtime_health.json").read_text())["updated_at"]
        assert wait_for(
            lambda: json.loads((moved / "runtime_health.json").read_text())["updated_at"] != before,
            timeout=5,
        ), "the server stopped writing into its own folder"
        if rotating:
            rotated = moved / "toy.log.1"
            assert wait_for(lambda: rotated.exists() and rotated.stat().st_mtime > swapped, 5)
        time.sleep(0.5)
        assert list(decoy.iterdir()) == []
        refused = lifecycle.run("status")
        assert refused.code == 6
        assert "is a symlink" in refused.err
    finally:
        # In one step: a server that finds no folder at its path makes a new one there, and
        # did, in the moment between an unlink and a rename.
        _exchange(moved, lifecycle.cache_root)
        moved.unlink()  # the symlink, now
    assert lifecycle.run("status").code == 0
    assert lifecycle.run("stop").code == 0
    assert gone(pid)


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux's renameat2 with RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange):
        raise OSError(ctypes.get_errno(), "renameat2", str(a))


@pytest.mark.parametrize("name", [".", "..", "-rf", "a" * 300, "x" * 64])
def test_a_server_name_must_be_a_safe_file_name(
    lifecycle: Lifecycle, tmp_path: Path, name: str
) -> None:
    state = tmp_path / "state"
    lifecycle.env.pop("MCP_SERVER_CACHE_ROOT")
    lifecycle.set_env(TOY_NAME=name, XDG_STATE_HOME=str(state))
    for command in ("start", "status", "stop"):
        result = lifecycle.run(command)
        assert result.code == 5, result
        assert "is not a safe file name" in result.err
        assert "1 to 63 letters" in result.err
    assert not state.exists()


def test_a_symlink_another_user_owns_on_the_way_is_refused(
    lifecycle: Lifecycle, other_user: OtherUser, tmp_path: Path
) -> None:
    """In a sticky folder the owner of a symlink may replace it at will."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    share = sticky / "share"
    share.symlink_to(ours)
    os.lchown(share, other_user.uid, other_user.gid)
    result = lifecycle.run("start", MCP_SERVER_CACHE_ROOT=str(share / "cache"))
    assert result.code == 6, result
    assert f"{share}, a folder above the cache root" in result.err
    assert f"owned by uid {other_user.uid}" in result.err
    assert list(ours.iterdir()) == []
    os.lchown(share, 0, 0)  # the same link, but root's: fine
    assert lifecycle.run("start", MCP_SERVER_CACHE_ROOT=str(share / "cache")).code == 0
    assert lifecycle.run("stop", MCP_SERVER_CACHE_ROOT=str(share / "cache")).code == 0


def test_new_folders_are_private_whatever_the_umask(lifecycle: Lifecycle, tmp_path: Path) -> None:
    cache_root = tmp_path / "fresh" / "a" / "b" / "cache"
    lifecycle.set_env(MCP_SERVER_CACHE_ROOT=str(cache_root))
    lifecycle.launcher = ["sh", "-c", 'umask 002 && exec "$@"', "sh", *lifecycle.command()]
    assert lifecycle.run("start").code == 0
    assert lifecycle.run("stop").code == 0
    for folder in (tmp_path / "fresh", tmp_path / "fresh" / "a", cache_root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_a_log_file_in_a_folder_others_may_write_is_refused(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    """Even a sticky one: another user could plant `extra.log.1` and break every rotation."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    result = lifecycle.run("start", MCP_SERVER_LOG_FILE=str(shared / "extra.log"))
    assert result.code == 6, result
    assert f"the folder of the log file {shared / 'extra.log'} is writable by others" in result.err
    assert list(shared.iterdir()) == []


def test_a_fifo_planted_as_log_file_is_refused(lifecycle: Lifecycle) -> None:
    planted = lifecycle.marks / "extra.log"
    os.mkfifo(planted)
    result = lifecycle.run("start", MCP_SERVER_LOG_FILE=str(planted))
    assert result.code == 6, result
    assert f"{planted} is not a regular file" in result.err
