"""Functional ops with PyTorch's names and signatures, NCHW (imported as `F`)."""
from .activation import add_relu, relu
from .batchnorm import batch_norm
from .conv import conv2d
from .elementwise import dropout, gelu, leaky_relu, sigmoid, tanh
from .layernorm import layer_norm
from .linear import flatten, linear
from .loss import cross_entropy, mse_loss, nll_loss
from .pad import pad
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .softmax import log_softmax, normalize, one_hot, softmax

__all__ = ["add_relu", "relu", "batch_norm", "conv2d", "dropout", "gelu", "leaky_relu", "sigmoid", "tanh",
           "layer_norm", "flatten", "linear", "cross_entropy", "pad", "adaptive_avg_pool2d", "avg_pool2d",
           "max_pool2d", "log_softmax", "mse_loss", "nll_loss", "normalize", "one_hot", "softmax"]
