"""The suite's leak check finds the processes a test started, and only those."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import (
    TOKEN_VAR,
    _processes_with_token_from_psutil,
    live_processes_with_token,
    processes_with_token,
)


def test_a_process_carrying_the_token_is_found_both_ways(test_token: str) -> None:
    child = subprocess.Popen(["sleep", "60"], env={**os.environ, TOKEN_VAR: f"{test_token}-x"})
    try:
        for find in (processes_with_token, _processes_with_token_from_psutil):
            assert [proc.pid for proc in find(test_token)] == [child.pid]
            assert find(f"{test_token}-y") == []  # another test's token
        assert [proc.pid for proc in live_processes_with_token(test_token)] == [child.pid]
        child.kill()
        child.wait()
        assert live_processes_with_token(test_token) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
