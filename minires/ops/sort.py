"""Sorting: sort, argsort and topk, their values differentiable through the indices they pick."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor
from .args import int_dim, is_int, normalize_axes
from .reduction import ValuesIndices


class TakeAlong(Function):
    """x's values at `indices` along `dim` (indices distinct along dim, as sort/topk give them)."""
    name = "take_along_dim"

    def forward(self, x, indices=None, dim=-1):
        self.shape, self.indices, self.dim = x.shape, indices, dim
        return get_array_module(x).take_along_axis(x, indices, axis=dim)

    def backward(self, g):
        xp = get_array_module(g)
        dx = xp.zeros(self.shape, dtype=g.dtype)
        # One index array per axis, broadcast against `indices`: dx[idx] = g scatters each value back.
        grid = [xp.arange(s).reshape([-1 if i == k else 1 for i in range(g.ndim)]) for k, s in enumerate(g.shape)]
        grid[self.dim] = self.indices
        dx[tuple(grid)] = g  # distinct indices: an assignment is the sum
        return dx


def _sort_dim(op: str, x, dim) -> int:
    int_dim(op, dim)
    axes = normalize_axes(op, dim, x.ndim)
    return axes[0] if axes else 0


def _order(x, dim: int, descending: bool):
    """Indices that sort x's array along dim; stable, so equal values keep their order."""
    a = x.array
    xp = get_array_module(a)
    if descending:
        a = -(a.astype(np.int64) if a.dtype.kind in "ub" else a)
    kind = {"kind": "stable"} if xp is np else {}
    return xp.argsort(a, axis=dim, **kind)


def sort(self, dim=-1, descending=False, stable=False):
    """The named pair (values, indices) of the values sorted along dim; ties keep their order."""
    if self.ndim == 0:
        return ValuesIndices(self.reshape(()), Tensor(get_array_module(self.array).zeros((), np.int64)))
    dim = _sort_dim("sort", self, dim)
    indices = _order(self, dim, bool(descending))
    return ValuesIndices(TakeAlong.apply(self, indices=indices, dim=dim), Tensor(indices.astype(np.int64)))


def argsort(self, dim=-1, descending=False, stable=False):
    """The indices that sort the values along dim (not differentiable)."""
    return sort(self, dim, descending, stable).indices


def topk(self, k, dim=-1, largest=True, sorted=True):
    """The named pair (values, indices) of the k largest (or smallest) values along dim, in order."""
    if not is_int(k):
        raise TypeError(f"topk: k must be an int, got {k!r}")
    dim = _sort_dim("topk", self, dim) if self.ndim else 0
    size = self.shape[dim] if self.ndim else 1
    if not 0 <= k <= size:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {size} (shape {self.shape})")
    if self.ndim == 0:
        return sort(self)
    xp = get_array_module(self.array)
    indices = xp.take(_order(self, dim, bool(largest)), xp.arange(int(k)), axis=dim)
    return ValuesIndices(TakeAlong.apply(self, indices=indices, dim=dim), Tensor(indices.astype(np.int64)))
