"""Benchmark plumbing for the scripts in this folder: this checkout's minires ahead of any installed
copy (a benchmark measures the code beside it), then everything of minires.bench.common."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(ROOT, "minires")) and ROOT not in sys.path:
    sys.path.insert(1, ROOT)

from minires.bench.common import *  # noqa: E402,F401,F403
