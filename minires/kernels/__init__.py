"""Fast paths beside the reference ops: threaded CPU kernels (cpu/) and CUDA kernels (cuda/).

Importing this package registers every fast path with minires.dispatch; minires/__init__ does it.
"""
from . import cpu, cuda

__all__ = ["cpu", "cuda"]
