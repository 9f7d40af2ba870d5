"""softmax, log_softmax and the helpers around them: one_hot, normalize."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _validate, dispatch
from ..backend import get_array_module
from ..tensor import Function, Tensor


class Softmax(Function):
    name = "softmax"
    input_names = ("input",)

    def forward(self, x, dim=-1):
        xp = get_array_module(x)
        # NOTE: subtracting the max along dim keeps exp() <= 1: no overflow for logits of 1e4.
        e = xp.exp(x - x.max(axis=dim, keepdims=True)) if x.size else xp.empty_like(x)
        e /= e.sum(axis=dim, keepdims=True)
        self.y, self.dim = e, dim
        return e

    def backward(self, g):
        # dx = y * (g - <g, y>) along dim: the Jacobian diag(y) - y y^T applied to g.
        y = self.y
        return y * (g - (g * y).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    name = "log_softmax"
    input_names = ("input",)

    def forward(self, x, dim=-1):
        xp = get_array_module(x)
        if not x.size:
            self.y, self.dim = xp.empty_like(x), dim
            return self.y
        z = x - x.max(axis=dim, keepdims=True)  # NOTE: max subtracted, as in softmax
        z -= xp.log(xp.exp(z).sum(axis=dim, keepdims=True))
        self.y, self.dim = z, dim
        return z

    def backward(self, g):
        # dx = g - softmax * sum(g) along dim.
        xp = get_array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.dim, keepdims=True)


def _softmax_call(op, input, dim, dtype):
    """softmax's or log_softmax's wrapper: the checks, a 0-d input as one value, an explicit dtype."""
    _validate.tensor_arg(op.name, "input", input)
    dim = _validate.dim_arg(op.name, dim, input)
    x = input.reshape(1) if input.ndim == 0 else input  # the softmax of one value is 1
    if dtype is None:
        y = dispatch.call(op, x, dim=dim)
    else:  # cast to `dtype` and run in it: an explicit dtype wins over autocast's policy, as in PyTorch
        x = x.to(dtype=dtype)
        y = dispatch.choose(op, (x,), {"dim": dim}).apply(x, dim=dim)
    return y.reshape(()) if input.ndim == 0 else y


def softmax(input, dim, dtype=None):
    """exp(x) / sum(exp(x)) along dim, computed stably; `dtype` casts the input first."""
    return _softmax_call(Softmax, input, dim, dtype)


def log_softmax(input, dim, dtype=None):
    """log(softmax(x)) along dim as x - max - log(sum(exp(x - max))), without log(0)."""
    return _softmax_call(LogSoftmax, input, dim, dtype)


def one_hot(tensor, num_classes: int = -1):
    """(*, num_classes) int64 tensor with a 1 at each class index of `tensor` (num_classes=-1: max + 1)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"one_hot: argument 'tensor' must be a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"one_hot: argument 'tensor' must hold integer class indices, got dtype {tensor.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (numbers.Integral, np.integer)):
        raise TypeError(f"one_hot: argument 'num_classes' must be an int, got {num_classes!r}")
    t = tensor.array
    lo, hi = (int(t.min()), int(t.max())) if t.size else (0, -1)
    if num_classes == -1:
        if not t.size:
            raise ValueError(f"one_hot: cannot infer num_classes from an empty tensor of shape {tensor.shape}")
        num_classes = hi + 1
    if num_classes < 0:
        raise ValueError(f"one_hot: argument 'num_classes' must be -1 or >= 0, got {num_classes}")
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"one_hot: class index {bad} is out of range for num_classes={num_classes} "
                         f"(tensor shape {tensor.shape})")
    xp = get_array_module(t)
    return Tensor((t[..., None] == xp.arange(num_classes)).astype(np.int64))  # (*t.shape, num_classes)


class Normalize(Function):
    name = "normalize"
    input_names = ("input",)

    def forward(self, x, p=2.0, dim=1, eps=1e-12):
        xp = get_array_module(x)
        a = xp.abs(x)
        n = (x * x).sum(axis=dim, keepdims=True) ** 0.5 if p == 2 else \
            (a ** p).sum(axis=dim, keepdims=True) ** (1 / p)  # ||x||_p along dim, length 1 there
        self.d = xp.maximum(n, eps)
        self.x, self.n, self.p, self.dim, self.eps = x, n, p, dim, eps
        return x / self.d

    def backward(self, g):
        # y = x / d with d = max(||x||_p, eps):
        # dx = g / d - <g, x> / d^2 * dd/dx, dd/dx = sign(x) |x|^(p-1) / n^(p-1) where n > eps, else 0.
        xp = get_array_module(g)
        x, n, d, p = self.x, self.n, self.d, self.p
        dn = x if p == 2 else xp.sign(x) * xp.abs(x) ** (p - 1)  # n^(p-1) * dn/dx
        n_safe = xp.where(n > self.eps, n, 1)  # no 0 ** (p-1) division where the clamp holds
        coef = xp.where(n > self.eps, (g * x).sum(axis=self.dim, keepdims=True) / (d * d * n_safe ** (p - 1)), 0)
        return g / d - coef * dn


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """input / max(||input||_p, eps) along dim (p >= 1, finite)."""
    _validate.tensor_arg("normalize", "input", input, min_ndim=1)
    for name, v in (("p", p), ("eps", eps)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise TypeError(f"normalize: argument '{name}' must be a finite real number, got {v!r}")
    if p < 1:
        raise ValueError(f"normalize: argument 'p' must be >= 1 (a norm), got {p}")
    if eps < 0:
        raise ValueError(f"normalize: argument 'eps' must be >= 0, got {eps}")
    return dispatch.call(Normalize, input, p=float(p), dim=_validate.dim_arg("normalize", dim, input), eps=float(eps))
