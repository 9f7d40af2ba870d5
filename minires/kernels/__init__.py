"""Fast paths beside the reference ops: threaded CPU kernels (cpu/) and CUDA kernels (cuda/).

registry.py lists them per op; `registry.install()` hands that table to minires.dispatch.
"""
from . import cpu, cuda, registry

registry.install()  # NOTE: until minires/__init__ makes this call itself, importing the package does it

__all__ = ["cpu", "cuda", "registry"]
