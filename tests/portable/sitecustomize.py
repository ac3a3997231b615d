"""Put on PYTHONPATH, this removes Linux-only calls from the interpreter (what macOS, and
Python < 3.13 there, does not have), so the fallbacks run here as they would on a Mac."""

import os

for _name in ("waitid", "pidfd_open"):
    if hasattr(os, _name):
        delattr(os, _name)
