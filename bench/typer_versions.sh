#!/usr/bin/env bash
# The hot commands under the oldest Typer the project allows and under the newest on PyPI, each
# in a fresh virtualenv of its own (the project's .venv is left alone):
#   bash bench/typer_versions.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
oldest=$(sed -n 's/^ *"typer>=\([0-9.]*\)".*/\1/p' pyproject.toml)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in "typer==$oldest" "typer"; do
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q --disable-pip-version-check . "$spec" pydantic-settings
    echo "== $("$work/venv/bin/python" -c 'import typer; print("Typer", typer.__version__)')"
    "$work/venv/bin/python" bench/run.py --hot "$@" || true
    rm -rf "$work/venv"
done
