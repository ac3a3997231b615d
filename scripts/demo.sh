#!/usr/bin/env bash
# Set up .venv if needed, then show the lifecycle of a real MCP server: start it detached,
# check its status, probe it with a real MCP client, call a tool, and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
demo=.venv/bin/mcp-lifecycle-demo

run() {
    echo
    echo "\$ mcp-lifecycle-demo $*"
    "$demo" "$@"
}

# Whatever happens below, do not leave the demo server running.
trap '"$demo" stop >/dev/null 2>&1 || true' EXIT

run start
run status
run health --probe
run call add '{"a": 2, "b": 3}'
run call word_count '{"text": "the lifecycle of a real MCP server"}'
run stop
set +e
run status
code=$?
set -e
echo "(exit code $code: 2 means not running)"
[ "$code" -eq 2 ]
trap - EXIT
echo
echo "Demo finished: the server was started, probed, used and stopped."
