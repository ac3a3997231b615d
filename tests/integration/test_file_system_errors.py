"""When the file system says no: a full disk, a read-only mount, a file where a folder belongs,
a reader that goes away. One line naming the cause, its documented code, nothing half-made."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Lifecycle


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs of our own, unmounted whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (as CI has)")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=700", "tmpfs", str(where)],
                   check=True)  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_state_folder_that_is_a_file(lifecycle: Lifecycle, tmp_path: Path) -> None:
    afile = tmp_path / "state"
    afile.write_text("not a folder")
    lifecycle.env.pop("MCP_SERVER_CACHE_ROOT")
    result = lifecycle.run("start", XDG_STATE_HOME=str(afile))
    assert result.code == 6, result
    assert result.err.startswith(f"Error: Not a directory: {afile}/mcp-lifecycle")
    assert "XDG_STATE_HOME" in result.err
    assert afile.read_text() == "not a folder"


def test_a_full_disk_says_so_and_leaves_nothing_running(
    lifecycle: Lifecycle, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "small", "64k") as small:
        filler = small / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        cache_root = small / "cache"
        lifecycle.set_env(MCP_SERVER_CACHE_ROOT=str(cache_root))
        result = lifecycle.run("start")
        assert result.code == 1, result
        assert "No space left on device" in result.err
        assert "exited with code" not in result.err
        assert lifecycle.run("status").code == 2
        assert not (cache_root / "toy.pid").exists()
        filler.unlink()  # with room again, it starts
        assert lifecycle.run("start").code == 0
        assert lifecycle.run("stop").code == 0


def test_a_read_only_cache_root(lifecycle: Lifecycle, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mount", "1m") as mount:
        cache_root = mount / "cache"
        cache_root.mkdir(mode=0o700)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        lifecycle.set_env(MCP_SERVER_CACHE_ROOT=str(cache_root))
        for args in (("start",), ("start", "--foreground")):
            result = lifecycle.run(*args)
            assert result.code == 6, result
            assert "Read-only file system" in result.err
        assert lifecycle.run("status").code == 2


def _with_closed_reader(lifecycle: Lifecycle, *args: str, read: int = 0) -> int:
    """Run a command whose stdout is a pipe its reader closes after `read` bytes."""
    reader, writer = os.pipe()
    proc = subprocess.Popen(
        lifecycle.command(*args),
        stdout=writer,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=lifecycle.env,
        text=True,
    )
    os.close(writer)
    if read:
        os.read(reader, read)
    os.close(reader)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert "Error" not in err, err
    return proc.returncode


def test_output_to_a_closed_pipe_is_not_an_error(lifecycle: Lifecycle) -> None:
    lifecycle.set_env(TOY_MODE="chatty", TOY_LINES="50")
    assert _with_closed_reader(lifecycle, "start") == 0  # `start | true`
    assert lifecycle.run("status").code == 0
    assert _with_closed_reader(lifecycle, "logs", "--lines", "40", read=1) == 0  # `| head -c1`
    assert lifecycle.run("stop").code == 0
