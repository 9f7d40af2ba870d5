"""CPU fast paths: single-threaded kernels over parts of the batch, split at the Function boundary."""
from . import activation, batchnorm, conv, depthwise, gelu, grouped, linear, pooling

__all__ = ["activation", "batchnorm", "conv", "depthwise", "gelu", "grouped", "linear", "pooling"]
