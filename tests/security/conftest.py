"""A second, real user on this machine, to stage what another local user could do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.conftest import TOKEN_VAR


@dataclass
class OtherUser:
    """A user made with `useradd` for one test and removed after it; `run`/`popen` act as them
    through `runuser`."""

    name: str
    uid: int
    gid: int
    python: str
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.name, "--", *args]

    def popen(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd="/",
        )
        self.started.append(proc)
        return proc

    def python_code(self, code: str) -> subprocess.Popen[str]:
        return self.popen(self.python, "-c", code)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()  # runuser passes it on to the process it runs
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _python_for(user: str) -> str:
    """An interpreter the other user may run (ours may live in root's home)."""
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        if (
            candidate
            and subprocess.run(
                ["runuser", "-u", user, "--", candidate, "-c", "pass"],
                capture_output=True,
                check=False,
                cwd="/",
            ).returncode
            == 0
        ):
            return candidate
    pytest.fail(f"no Python interpreter that {user} may run")


@pytest.fixture
def other_user(test_token: str) -> Iterator[OtherUser]:
    if os.geteuid() != 0:
        pytest.skip("staging a second user needs root (as CI has)")
    name = f"mcpl{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
        check=True,
        capture_output=True,
    )
    try:
        import pwd

        entry = pwd.getpwnam(name)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", TOKEN_VAR: test_token}
        user = OtherUser(name, entry.pw_uid, entry.pw_gid, _python_for(name), env)
        try:
            yield user
        finally:
            user.stop_all()
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", name], check=False, capture_output=True)
