"""Reductions: sum, mean, max/min (values and indices), var/std with Bessel's correction, p-norms."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .arithmetic import maximum, minimum, neg
from .._validate import (correction_arg, floating_reduction, int_dim, keepdim_arg, nonempty, nonempty_dim,
                         norm_order, normalize_axes, selectable)


class Sum(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape, self.axes = a.shape, dim  # dim: None or a tuple of axes
        return a.sum(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        xp = get_array_module(g)
        if self.axes is not None:
            g = g.reshape([1 if i in self.axes else s for i, s in enumerate(self.shape)])
        return xp.broadcast_to(g, self.shape).copy()


class Mean(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape, self.axes = a.shape, dim  # dim: None or a tuple of axes
        axes = self.axes if self.axes is not None else tuple(range(a.ndim))
        self.count = int(np.prod([a.shape[i] for i in axes])) if axes else 1
        return a.mean(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        xp = get_array_module(g)
        if self.axes is not None:
            g = g.reshape([1 if i in self.axes else s for i, s in enumerate(self.shape)])
        return xp.broadcast_to(g / self.count, self.shape).copy()


class Max(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.axes = dim  # None or a tuple of axes
        self.a = a
        self.out = a.max(axis=self.axes, keepdims=True)
        if keepdim:
            return self.out
        return self.out.reshape(()) if self.axes is None else self.out.squeeze(axis=self.axes)

    def backward(self, g):
        # NOTE: ties share the gradient equally, as PyTorch's amax does.
        mask = (self.a == self.out)
        count = mask.sum(axis=self.axes, keepdims=True).astype(g.dtype)  # no float64 temporaries
        g = g.reshape(self.out.shape)
        return (mask * (g / count)).astype(self.a.dtype)


def scatter_along(shape, indices, g, dim: int):
    """Zeros of `shape` with g's values at `indices` along dim (indices distinct along dim: an assignment is the sum)."""
    xp = get_array_module(g)
    dx = xp.zeros(shape, dtype=g.dtype)
    # One index array per axis, broadcast against `indices`: dx[idx] = g scatters each value back.
    grid = [xp.arange(s).reshape([-1 if i == k else 1 for i in range(g.ndim)]) for k, s in enumerate(g.shape)]
    grid[dim] = indices
    dx[tuple(grid)] = g
    return dx


class TakeAlong(Function):
    """x's values at `indices` along `dim` (indices distinct along dim, as sort/topk give them)."""
    name = "take_along_dim"

    def forward(self, x, indices=None, dim=-1):
        self.shape, self.indices, self.dim = x.shape, indices, dim
        return get_array_module(x).take_along_axis(x, indices, axis=dim)

    def backward(self, g):
        return scatter_along(self.shape, self.indices, g, self.dim)


class SelectAlong(Function):
    """max(dim)/min(dim)'s values; the gradient goes only to the element `indices` (argmax/argmin) picks."""
    name = "max"

    def forward(self, a, dim=0, keepdim=False, indices=None, smallest=False):
        self.shape, self.dim, self.keepdim, self.indices = a.shape, dim, keepdim, indices
        return a.min(axis=dim, keepdims=keepdim) if smallest else a.max(axis=dim, keepdims=keepdim)

    def backward(self, g):
        xp = get_array_module(g)
        if not self.keepdim:  # indices and g without the reduced dim: put it back as size 1
            g, indices = xp.expand_dims(g, self.dim), xp.expand_dims(self.indices, self.dim)
        else:
            indices = self.indices
        return scatter_along(self.shape, indices, g, self.dim)


def _reduced(x, axes):
    """(count, output shape without keepdim) of a reduction of x over a tuple of axes."""
    count = int(np.prod([x.shape[i] for i in axes]))
    return count, tuple(s for i, s in enumerate(x.shape) if i not in axes)


class Var(Function):
    """Variance over dim with Bessel's `correction` (divide by N - correction), as torch.var."""

    def forward(self, x, dim=None, correction=1, keepdim=False):
        axes = dim  # a tuple of axes
        n, out_shape = _reduced(x, axes)
        self.denom = max(n - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):  # NOTE: N <= correction gives inf/NaN, as PyTorch
            self.d = x - x.sum(axis=axes, keepdims=True) / n  # (x - mean), x's shape
            out = (self.d * self.d).sum(axis=axes, keepdims=True) / self.denom  # x's shape, 1 on axes
        self.keep_shape, self.out_shape = out.shape, out_shape
        return out if keepdim else out.reshape(out_shape)

    def backward(self, g):
        scale = 2.0 / self.denom if self.denom else np.inf
        return g.reshape(self.keep_shape) * scale * self.d


class Std(Var):
    """Standard deviation: sqrt of Var, with gradient 0 where it is 0 (PyTorch's convention)."""

    def forward(self, x, dim=None, correction=1, keepdim=False):
        var = super().forward(x, dim, correction, keepdim=True)  # x's shape, 1 on axes
        self.out = get_array_module(var).sqrt(var)
        return self.out if keepdim else self.out.reshape(self.out_shape)

    def backward(self, g):
        xp = get_array_module(g)
        g = g.reshape(self.keep_shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            dvar = xp.where(self.out == 0, xp.zeros((), dtype=g.dtype), g / (2 * self.out))
        return super().backward(dvar)


class Norm(Function):
    """The vector p-norm over dim (all elements by default): sum(|x|^p)^(1/p), max|x| for inf,
    min|x| for -inf, the count of non-zeros for 0, as torch.norm with a numeric p."""

    def forward(self, x, p=2, dim=None, keepdim=False):
        axes = dim  # a tuple of axes
        out_shape = _reduced(x, axes)[1]
        xp = get_array_module(x)
        a = abs(x)
        if p == 2:
            out = xp.sqrt((a * a).sum(axis=axes, keepdims=True))
        elif p == 1:
            out = a.sum(axis=axes, keepdims=True)
        elif p == np.inf:
            out = a.max(axis=axes, keepdims=True)
        elif p == -np.inf:
            out = a.min(axis=axes, keepdims=True)
        elif p == 0:
            out = (a != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        else:
            out = ((a ** p).sum(axis=axes, keepdims=True)) ** (1 / p)
        self.x, self.p, self.axes, self.out = x, p, axes, out  # out: x's shape, 1 on axes
        return out if keepdim else out.reshape(out_shape)

    def backward(self, g):
        xp = get_array_module(g)
        x, p, out = self.x, self.p, self.out
        g = g.reshape(out.shape)
        zero = xp.zeros((), dtype=g.dtype)
        if p == 0:
            return xp.zeros_like(x)
        if p == 1:
            return g * xp.sign(x)
        if np.isinf(p):  # NOTE: ties share the gradient, as amax does
            mask = abs(x) == out
            count = mask.sum(axis=self.axes, keepdims=True).astype(g.dtype)
            return (g * xp.sign(x) * mask / count).astype(x.dtype)
        # d|x|_p/dx = sign(x) (|x| / |x|_p)^(p-1); 0 where x or the norm is 0 (PyTorch's convention)
        safe_out = xp.where(out == 0, xp.ones((), dtype=out.dtype), out)
        if p == 2:
            return g * x / safe_out
        a = abs(x)
        ratio = (xp.where(a > 0, a, xp.ones((), dtype=a.dtype)) / safe_out) ** (p - 1)
        return g * xp.where(a > 0, xp.sign(x) * ratio, zero)


# ---- Tensor methods (bound in minires/ops/__init__.py) -----------------------------------------------

class ValuesIndices(NamedTuple):
    """What max(dim) and min(dim) return: PyTorch's (values, indices) pair, unpackable and named."""
    values: Tensor
    indices: Tensor


def sum_(self, dim=None, keepdim=False):
    return Sum.apply(self, dim=normalize_axes("sum", dim, self.ndim), keepdim=keepdim_arg("sum", keepdim))


def mean(self, dim=None, keepdim=False):
    return Mean.apply(self, dim=normalize_axes("mean", dim, self.ndim), keepdim=keepdim_arg("mean", keepdim))


def _max(x, dim, keepdim):
    """Max's wrapper: the largest values over dim (None, an int or a tuple); ties share the gradient."""
    axes = normalize_axes("max", dim, x.ndim)
    keepdim = keepdim_arg("max", keepdim)
    nonempty("max", x)
    return Max.apply(x, dim=axes, keepdim=keepdim)


def max_(self, dim=None, keepdim=False):
    """The largest value (dim=None), the named pair (values, indices) along `dim`, or with a tensor
    the elementwise maximum, as PyTorch."""
    if isinstance(dim, Tensor):
        return maximum(self, dim)
    if dim is None:
        return _max(self, None, keepdim)
    return _select("max", self, dim, keepdim)


def min_(self, dim=None, keepdim=False):
    """The smallest value (dim=None), the named pair (values, indices) along `dim`, or with a tensor
    the elementwise minimum, as PyTorch."""
    if isinstance(dim, Tensor):
        return minimum(self, dim)
    if dim is None:
        return neg(_max(neg(self), None, keepdim))
    return _select("min", self, dim, keepdim)


def _select(op: str, x, dim, keepdim) -> ValuesIndices:
    """max/min along dim: the values with the whole gradient on the index argmax/argmin picks (first of ties),
    as PyTorch's max(dim); amax and max() share it among ties instead."""
    int_dim(op, dim)
    if x.ndim == 0:
        return ValuesIndices(x.reshape(()), Tensor(get_array_module(x.array).zeros((), np.int64)))
    axis = normalize_axes(op, dim, x.ndim)[0]
    keepdim = keepdim_arg(op, keepdim)
    a = x.array
    nonempty_dim(op, x, axis, dim)
    indices = a.argmax(axis=axis) if op == "max" else a.argmin(axis=axis)
    if keepdim:
        indices = get_array_module(a).expand_dims(indices, axis)
    values = SelectAlong.apply(x, dim=axis, keepdim=keepdim, indices=indices, smallest=op == "min")
    return ValuesIndices(values, Tensor(indices))


def amax(self, dim=None, keepdim=False):
    """The largest values over one or several dims (ties share the gradient)."""
    return _max(self, dim, keepdim)


def argmax(self, dim=None, keepdim=False):
    """Indices of the maxima (not differentiable)."""
    return _arg_reduce(self, "argmax", dim, keepdim)


def argmin(self, dim=None, keepdim=False):
    """Indices of the minima (not differentiable)."""
    return _arg_reduce(self, "argmin", dim, keepdim)


def _arg_reduce(x, op, dim, keepdim):
    if dim is not None:
        int_dim(op, dim)
    axes = normalize_axes(op, dim, x.ndim)
    keepdim = keepdim_arg(op, keepdim)
    dim = None if not axes else axes[0]
    selectable(op, x, dim)
    out = getattr(x.array, op)(axis=dim)
    if keepdim and dim is not None:
        out = get_array_module(out).expand_dims(out, dim)
    return Tensor(out)


def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over dim (all by default), unbiased (divide by N - 1) unless unbiased=False or correction=0."""
    dim, correction = correction_arg("var", dim, unbiased, correction)
    axes = floating_reduction("var", self, dim, keepdim)
    return Var.apply(self, dim=axes, correction=correction, keepdim=keepdim)


def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over dim, with the same correction rules as var."""
    dim, correction = correction_arg("std", dim, unbiased, correction)
    axes = floating_reduction("std", self, dim, keepdim)
    return Std.apply(self, dim=axes, correction=correction, keepdim=keepdim)


def norm(self, p=2, dim=None, keepdim=False):
    """The vector p-norm over dim (all elements by default); p a number >= 0, inf or -inf, or 'fro'."""
    p = norm_order(p)
    axes = floating_reduction("norm", self, dim, keepdim)
    if np.isinf(p) and _reduced(self, axes)[0] == 0:
        raise ValueError(f"norm: the {p}-norm of an empty reduction is undefined (shape {self.shape}, dim {dim})")
    return Norm.apply(self, p=p, dim=axes, keepdim=keepdim)
