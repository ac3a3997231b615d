"""The shell scripts run on macOS too: its bash is 3.2 and its tools are BSD's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("scripts/*.sh"), *ROOT.glob("bench/*.sh"), ROOT / ".ci" / "run"])
# What bash 3.2 lacks, and what only GNU tools accept.
NOT_ON_MACOS = {
    r"\bmapfile\b|\breadarray\b": "bash 4 builtins",
    r"declare -[aA]*A": "associative arrays (bash 4)",
    r"\$\{\w+(,,|\^\^)": "case conversion (bash 4)",
    r"\[\[ -v ": "[[ -v ]] (bash 4.2)",
    r"&>>|\|&": "bash 4 redirections",
    r"\bwait -n\b|\blocal -n\b": "bash 4.3 builtins",
    r"\bsha1sum\b|\bsha256sum\b|\bmd5sum\b": "GNU coreutils checksums",
    r"\breadlink -f\b|\bstat -c\b|\bgrep -P\b|\bdate \+%s%N": "GNU-only flags",
    r"\bsed -i(\s|$)": "GNU sed -i (BSD sed needs a suffix argument)",
    r"^\s*timeout ": "GNU timeout",
}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_script_uses_nothing_macos_lacks(script: Path) -> None:
    found = [
        f"line {number}: {why}: {line.strip()}"
        for number, line in enumerate(script.read_text().splitlines(), 1)
        if not line.lstrip().startswith("#")
        for pattern, why in NOT_ON_MACOS.items()
        if re.search(pattern, line)
    ]
    assert found == []


def test_every_script_is_checked() -> None:
    assert {path.name for path in SCRIPTS} >= {"setup.sh", "demo.sh", "test.sh", "run"}
