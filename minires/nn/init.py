"""In-place initialisers with PyTorch's names, drawing from minires' seeded generator."""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..creation import default_generator
from ..tensor import Tensor


def _fill(tensor, sample):
    """Write `sample(shape, dtype)` (a NumPy array) into the tensor's array, keeping dtype and device."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init: expected a Tensor, got {type(tensor).__name__}")
    # NOTE: float32 tensors are drawn in float32 directly: twice as fast on ResNet-sized layers.
    dtype = np.float32 if tensor.dtype == np.float32 else np.float64
    values = np.asarray(sample(tensor.shape, dtype)).astype(tensor.dtype, copy=False)
    tensor.data[...] = backend.to_device(values, tensor.device)
    return tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = in_channels * receptive field, fan_out = out_channels * receptive field (weights are (out, in, ...))."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in/out need a tensor of at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    """Fill with U(a, b)."""
    def sample(shape, dtype):
        u = default_generator().random(shape, dtype=dtype)
        u *= b - a
        u += a
        return u
    return _fill(tensor, sample)


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill with N(mean, std^2)."""
    def sample(shape, dtype):
        z = default_generator().standard_normal(shape, dtype=dtype)
        z *= std
        z += mean
        return z
    return _fill(tensor, sample)


def constant_(tensor, val: float):
    return _fill(tensor, lambda shape, dtype: np.full(shape, val, dtype=dtype))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He et al. 2015 uniform: U(-bound, bound) with bound = gain * sqrt(3 / fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He et al. 2015 normal: N(0, (gain / sqrt(fan))^2)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor, gain: float = 1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def default_reset_(weight, bias=None) -> None:
    """PyTorch's Conv/Linear default: kaiming_uniform_(a=sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
