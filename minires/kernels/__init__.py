"""Fast paths beside the reference ops: threaded CPU kernels (cpu/) and CUDA kernels (cuda/).

registry.py lists them per op; minires/__init__ calls `registry.install()`, which hands that table to
minires.dispatch.
"""
from . import cpu, cuda, registry

__all__ = ["cpu", "cuda", "registry"]
