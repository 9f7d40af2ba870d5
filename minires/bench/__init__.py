"""Benchmarks that ship with the package: `minires bench` (kernels.py) and their plumbing (common.py)."""
