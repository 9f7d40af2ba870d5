"""`minires bench` on this checkout's minires: python benchmarks/bench_kernels.py [options] (see --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402,F401  (puts this checkout's minires first)
from minires.bench.kernels import main  # noqa: E402

if __name__ == "__main__":
    main()
