"""Elementwise activations (sigmoid, tanh, gelu, leaky_relu) and dropout; every array keeps x's shape.

Each runs through dispatch.call like every op.
"""
from __future__ import annotations

import math
import numbers

from .. import _validate, backend, dispatch
from ..tensor import Function
from ..backend import get_array_module
from ..creation import default_generator
from .erf import erfc

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


class Sigmoid(Function):
    name = "sigmoid"
    input_names = ("input",)

    def forward(self, x):
        xp = get_array_module(x)
        # NOTE: exp(-|x|) <= 1 never overflows; 1/(1+e) for x >= 0 and e/(1+e) for x < 0 are both
        # exact to rounding, where 1/(1+exp(-x)) would overflow exp for x < -89 (float32).
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Tanh(Function):
    name = "tanh"
    input_names = ("input",)

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


class GELU(Function):
    name = "gelu"
    input_names = ("input",)

    def forward(self, x, approximate="none"):
        xp = get_array_module(x)
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            self.t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            return 0.5 * x * (1 + self.t)
        # x Phi(x) with Phi(x) = 0.5 (1 + erf(x/sqrt 2)) = 0.5 erfc(-x/sqrt 2).
        # NOTE: erfc keeps Phi's relative precision in the far left tail, where 1 + erf cancels.
        self.cdf = 0.5 * erfc(-x * _INV_SQRT_2)
        return x * self.cdf

    def backward(self, g):
        x = self.x
        xp = get_array_module(x)
        if self.approximate == "tanh":
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + self.t) + 0.5 * x * (1 - self.t * self.t) * du)
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)  # d/dx x Phi(x) = Phi(x) + x phi(x)
        return g * (self.cdf + x * pdf)


class LeakyReLU(Function):
    name = "leaky_relu"
    input_names = ("input",)

    def forward(self, x, negative_slope=0.01):
        xp = get_array_module(x)
        self.positive, self.slope = x > 0, negative_slope
        return xp.where(self.positive, x, x * negative_slope)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.where(self.positive, g, g * self.slope)  # slope at 0, as PyTorch


class Dropout(Function):
    name = "dropout"
    input_names = ("input",)

    def forward(self, x, mask=None):
        self.mask = mask  # 0 or 1/(1-p) per element, in x's dtype
        return x * mask

    def backward(self, g):
        return g * self.mask


def _floating(op, x):
    return _validate.tensor_arg(op, "input", x)


def sigmoid(input):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    return dispatch.call(Sigmoid, _floating("sigmoid", input))


def tanh(input):
    """Hyperbolic tangent, elementwise."""
    return dispatch.call(Tanh, _floating("tanh", input))


def gelu(input, approximate: str = "none"):
    """x * Phi(x) with the exact normal CDF (erf by W. J. Cody's rational approximation, erf.py),
    or, with approximate='tanh', 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    _floating("gelu", input)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: argument 'approximate' must be 'none' or 'tanh', got {approximate!r}")
    return dispatch.call(GELU, input, approximate=approximate)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x for x > 0, negative_slope * x otherwise. `inplace` is accepted and ignored (no input is mutated)."""
    _floating("leaky_relu", input)
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(f"leaky_relu: argument 'negative_slope' must be a real number, got {negative_slope!r}")
    return dispatch.call(LeakyReLU, input, negative_slope=float(negative_slope))


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout); identity
    when training=False. The mask is drawn from minires's global generator (mr.manual_seed), on the
    CPU and then copied to input's device, so a seed gives the same mask on every device.
    `inplace` is accepted and ignored (no input is mutated)."""
    _floating("dropout", input)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: argument 'p' must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return input
    keep = default_generator().random(input.shape) >= p  # (*input.shape), P(keep) = 1 - p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = backend.to_device((keep * scale).astype(input.dtype), input.device)
    return dispatch.call(Dropout, input, mask=mask)


__all__ = ["sigmoid", "tanh", "gelu", "leaky_relu", "dropout"]
