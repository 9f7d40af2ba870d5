"""softmax, log_softmax and the losses and helpers around them: nll_loss, mse_loss, one_hot, normalize."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _validate, dispatch
from ..backend import get_array_module
from ..tensor import Function, Tensor, is_grad_enabled
from .loss import check_targets, class_indices, reduction_arg


def _dim(op: str, dim, x) -> int:
    """dim as a non-negative axis of x, or ValueError/TypeError naming the op and x's shape.

    A 0-d x has dims 0 and -1, as in PyTorch."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (numbers.Integral, np.integer)):
        raise TypeError(f"{op}: argument 'dim' must be an int, got {dim!r}")
    n = max(x.ndim, 1)
    if not -n <= dim < n:
        raise ValueError(f"{op}: argument 'dim' ({dim}) is out of range for input of shape {x.shape}")
    return int(dim) % n


class Softmax(Function):
    name = "softmax"
    inputs = ("input",)

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
    inputs = ("input",)

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
    dim = _dim(op.name, dim, input)
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


class NLLLoss(Function):
    name = "nll_loss"
    inputs = ("input", "weight")

    def forward(self, x, weight=None, target=None, ignore_index=-100, reduction="mean"):
        # x (N, C, *d) or (C,); target (N, *d) or (): one class index per row of x
        xp = get_array_module(x)
        axis = 1 if x.ndim > 1 else 0  # the class axis
        C = x.shape[axis]
        valid = target != ignore_index
        t = xp.where(valid, target, 0)
        classes = xp.arange(C).reshape((C,) + (1,) * (x.ndim - axis - 1))  # (C, 1, ..., 1)
        self.onehot = xp.expand_dims(t, axis) == classes  # like x
        w = valid.astype(x.dtype) if weight is None else weight[t] * valid  # like target
        picked = xp.where(self.onehot, x, 0).sum(axis=axis)  # x[n, t[n], ...], like target
        loss = 0 - w * picked  # 0 - : ignored targets give +0, not -0
        self.w, self.axis, self.reduction = w, axis, reduction
        if reduction == "none":
            return loss
        if reduction == "sum":
            return xp.asarray(loss.sum())
        self.total = w.sum()
        if float(self.total) == 0:  # no target counts (all ignored, or an empty batch): NaN, as PyTorch
            return xp.full((), xp.nan, dtype=x.dtype)
        return xp.asarray(loss.sum() / self.total)

    def backward(self, g):
        xp = get_array_module(g)
        coef = -self.w * g  # like target: d loss / d x[n, t[n], ...]
        if self.reduction == "mean":
            coef = coef / self.total
        return xp.where(self.onehot, xp.expand_dims(coef, self.axis), 0).astype(g.dtype, copy=False), None


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """Negative log-likelihood of class indices: -input[n, target[n]], weighted by weight[target[n]].

    input (N, C), (N, C, d1, ...) or (C,) holds log-probabilities (log_softmax's output); target
    (N,), (N, d1, ...) or () holds class indices, those equal to ignore_index count for nothing.
    'mean' divides by the summed weights of the counted targets. Targets are range-checked here
    (a device-to-host sync on a GPU).
    """
    _validate.tensor_arg("nll_loss", "input", input, min_ndim=1)
    t = class_indices("nll_loss", target, input)
    expected = (input.shape[0],) + input.shape[2:] if input.ndim > 1 else ()
    if tuple(t.shape) != expected:
        raise ValueError(f"nll_loss: 'target' must have shape {expected} for input of shape {input.shape}, "
                         f"got {tuple(t.shape)}")
    C = input.shape[1] if input.ndim > 1 else input.shape[0]
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (numbers.Integral, np.integer)):
        raise TypeError(f"nll_loss: argument 'ignore_index' must be an int, got {ignore_index!r}")
    check_targets(t[t != ignore_index], C, input.shape, op="nll_loss")
    if weight is not None:
        _validate.tensor_arg("nll_loss", "weight", weight)
        if weight.shape != (C,):
            raise ValueError(f"nll_loss: argument 'weight' must have shape ({C},) for input of shape "
                             f"{input.shape}, got {weight.shape}")
        if weight.requires_grad and is_grad_enabled():  # as PyTorch: no gradient for the class weights
            raise RuntimeError("nll_loss: the derivative for 'weight' is not implemented; pass weight.detach()")
    return dispatch.call(NLLLoss, input, weight, target=t, ignore_index=int(ignore_index),
                         reduction=reduction_arg("nll_loss", reduction))


class MSELoss(Function):
    name = "mse_loss"
    inputs = ("input", "target")

    def forward(self, x, y, reduction="mean"):
        xp = get_array_module(x)
        self.diff, self.reduction = x - y, reduction
        sq = self.diff * self.diff
        if reduction == "none":
            return sq
        if reduction == "sum":
            return xp.asarray(sq.sum())
        if sq.size == 0:  # the mean of nothing is NaN, as PyTorch
            return xp.full((), xp.nan, dtype=x.dtype)
        return xp.asarray(sq.mean())

    def backward(self, g):
        scale = g / self.diff.size if self.reduction == "mean" else g
        d = 2 * self.diff * scale
        return d, -d


def mse_loss(input, target, reduction: str = "mean"):
    """(input - target)^2, averaged, summed or per element; shapes must match (no broadcasting)."""
    _validate.tensor_arg("mse_loss", "input", input)
    _validate.tensor_arg("mse_loss", "target", target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: 'input' and 'target' must have the same shape, got {input.shape} "
                         f"and {target.shape}")
    return dispatch.call(MSELoss, input, target, reduction=reduction_arg("mse_loss", reduction))


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
    inputs = ("input",)

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
    return dispatch.call(Normalize, input, p=float(p), dim=_dim("normalize", dim, input), eps=float(eps))
