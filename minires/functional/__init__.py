"""Functional ops with PyTorch's names and signatures, NCHW (imported as `F`)."""
from .activation import add_relu, relu
from .batchnorm import batch_norm
from .conv import conv2d
from .linear import flatten, linear
from .loss import cross_entropy
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ = ["add_relu", "relu", "batch_norm", "conv2d", "flatten", "linear", "cross_entropy",
           "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d"]
