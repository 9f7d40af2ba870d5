"""CUDA fast paths: Functions whose forward and backward launch the hand-written kernels of kernels.cu.

launcher.py compiles kernels.cu through CuPy and checks each launch; ops.py wraps each kernel for arrays;
the other modules are the Functions, one per op, listed in minires/kernels/registry.py.
"""
from . import activation, batchnorm, conv, grouped, loss, pooling

__all__ = ["activation", "batchnorm", "conv", "grouped", "loss", "pooling"]
