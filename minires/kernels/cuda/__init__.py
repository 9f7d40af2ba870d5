"""CUDA fast paths: Functions whose forward and backward launch the kernels of minires.cuda (kernels.cu)."""
from . import activation, batchnorm, conv, loss, pooling

__all__ = ["activation", "batchnorm", "conv", "loss", "pooling"]
