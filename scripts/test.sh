#!/usr/bin/env bash
# Set up .venv if needed, then run the linters and the whole test suite with coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

# Every test starts CLI processes; where PYTHONDONTWRITEBYTECODE is set (as on CI machines), each
# would compile the package again unless it is compiled once here. And every pytest worker
# would rewrite the asserts of every test module again: one collection with it unset caches
# them (pytest reads that cache either way), on the core mypy leaves free.
python -m compileall -q src tests > /dev/null
PYTHONDONTWRITEBYTECODE='' python -m pytest --collect-only -q --no-cov -p no:cacheprovider \
    > /dev/null 2>&1 &
collecting=$!
trap 'kill "$collecting" 2> /dev/null || true' EXIT  # a linter failed, or Ctrl-C
ruff check src tests bench
ruff format --check src tests bench
mypy
wait "$collecting" || true  # a test module that cannot load: the run below says which
trap - EXIT  # reaped: its PID may be another process's from now on
rm -f .coverage .coverage.*
# Three workers on two cores: under coverage the tests keep both cores busy, and a fourth only
# added contention (210 s against 228 s); work stealing keeps the long ones from finishing last
# on one worker. The portable pass, without coverage, waits more: four workers there.
# The endurance run takes 10 s here (its 1000 snapshot readers take a core from every other
# test); MCP_LIFECYCLE_ENDURANCE_SECONDS=600 bash scripts/test.sh -m endurance for a long one.
MCP_LIFECYCLE_ENDURANCE_SECONDS=${MCP_LIFECYCLE_ENDURANCE_SECONDS:-10} \
    pytest -n 3 --dist worksteal --cov --cov-report=term-missing --cov-fail-under=90 \
    --durations=15 "$@"
# The fallbacks macOS runs on (no os.waitid, pidfds, /proc, abstract sockets or
# PR_SET_PDEATHSIG): the lifecycle tests again with those taken away (tests/portable) in every
# process, the warm interpreter the CLI calls are forked from included (tests/forkserver.py).
PYTHONPATH="$PWD/tests/portable" \
    pytest -n 4 --dist worksteal -q --no-cov -m "not repetitive" \
    tests/integration/test_lifecycle.py tests/integration/test_start.py \
    tests/integration/test_stop.py tests/integration/test_supervisor.py \
    tests/integration/test_portable.py
# The code that decides whom to signal and what is on disk must be covered completely.
coverage report --fail-under=100 --include='*/mcp_lifecycle/files/pidfile.py,*/mcp_lifecycle/files/snapshot.py,*/mcp_lifecycle/files/name_socket.py,*/mcp_lifecycle/server/name_claim.py,*/mcp_lifecycle/files/identity.py,*/mcp_lifecycle/server/signals.py'
