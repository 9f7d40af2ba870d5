"""Sorting: sort, argsort and topk, their values differentiable through the indices they pick."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor
from .._validate import int_dim, is_int, normalize_axes
from .reduction import TakeAlong, ValuesIndices


def _sort_dim(op: str, x, dim) -> int:
    int_dim(op, dim)
    axes = normalize_axes(op, dim, x.ndim)
    return axes[0] if axes else 0


def _order(x, dim: int, descending: bool):
    """Indices that sort x's array along dim; stable, so equal values keep their order; NaN ranks above
    every number, as in PyTorch (last ascending, first descending)."""
    a = x.array
    xp = get_array_module(a)
    kind = {"kind": "stable"} if xp is np else {}
    if not descending:
        return xp.argsort(a, axis=dim, **kind)  # NumPy and CuPy put NaN last
    # NOTE: ~a reverses integers (and bools) without the overflow of -a at the int minimum
    order = xp.argsort(-a if a.dtype.kind in "fc" else ~a, axis=dim, **kind)
    if a.dtype.kind == "f" and bool(xp.isnan(a).any()):  # -NaN still sorts last: move the NaNs to the front
        is_number = ~xp.isnan(xp.take_along_axis(a, order, axis=dim))
        order = xp.take_along_axis(order, xp.argsort(is_number, axis=dim, **kind), axis=dim)
    return order


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
