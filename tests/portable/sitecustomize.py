"""Put on PYTHONPATH, this removes Linux-only calls from the interpreter (what macOS, and
Python < 3.13 there, does not have) and tells mcp-lifecycle to do without /proc, abstract
sockets and PR_SET_PDEATHSIG, so the fallbacks run here as they would on a Mac."""

import os

os.environ["MCP_LIFECYCLE_PORTABLE"] = "1"  # and for every process started from here

for _name in ("waitid", "pidfd_open"):
    if hasattr(os, _name):
        delattr(os, _name)
