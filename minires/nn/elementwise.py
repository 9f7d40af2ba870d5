"""Activation layers (Sigmoid, Tanh, GELU, LeakyReLU, SiLU, ReLU6, Hardswish, ..., Softmax, LogSoftmax) and
Dropout/Dropout2d, over F (minires.functional) and NF (nn.functional, for the composite ones)."""
from __future__ import annotations

import numbers

from .. import functional as F
from . import functional as NF
from .module import Module


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x):
        return F.tanh(x)


class GELU(Module):
    """x * Phi(x), exact (approximate='none') or by the tanh formula (approximate='tanh')."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate  # checked by F.gelu

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"


class LeakyReLU(Module):
    """x for x > 0, negative_slope * x otherwise. `inplace` is accepted and ignored."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace  # checked by F.leaky_relu

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Softmax(Module):
    """softmax along `dim` (minires has no implicit dim: dim=None raises at the call)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log_softmax along `dim`."""

    def forward(self, x):
        return F.log_softmax(x, self.dim)


class Dropout(Module):
    """Inverted dropout in training mode (zero with probability p, scale the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        # Checked here as well as by F.dropout: PyTorch refuses a bad p at construction (F sees it only at a call).
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p, self.inplace = float(p), inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _Composite(Module):
    """An activation of nn.functional with no settings but `inplace` (accepted, ignored: inputs are never mutated)."""
    fn = None

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return type(self).fn(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class SiLU(_Composite):
    """x * sigmoid(x) (swish)."""
    fn = NF.silu


class ReLU6(_Composite):
    """min(max(x, 0), 6)."""
    fn = NF.relu6


class Hardsigmoid(_Composite):
    """clamp(x / 6 + 1/2, 0, 1)."""
    fn = NF.hardsigmoid


class Hardswish(_Composite):
    """x * hardsigmoid(x)."""
    fn = NF.hardswish


class Hardtanh(Module):
    """x clamped to [min_val, max_val]."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return NF.hardtanh(x, self.min_val, self.max_val)


class ELU(Module):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return NF.elu(x, self.alpha)


class Softplus(Module):
    """log(1 + exp(beta x)) / beta, linear above threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return NF.softplus(x, self.beta, self.threshold)


class Dropout2d(Module):
    """Zero whole channels with probability p in training mode (see nn.functional.dropout2d)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return NF.dropout2d(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
