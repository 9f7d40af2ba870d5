"""Ops that rearrange elements: permute/transpose, indexing, expand (a broadcast view) and repeat (a
tiled copy); reshaping is in shape.py."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor, unbroadcast
from .._validate import int_sizes, is_int, normalize_axes, permutation, sizes_arg


class Permute(Function):
    def forward(self, a, dims=()):
        self.dims = dims  # non-negative axes
        return a.transpose(self.dims)

    def backward(self, g):
        return g.transpose(tuple(int(i) for i in np.argsort(self.dims)))


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


class GetItem(Function):
    name = "getitem"

    def forward(self, a, index=None):
        if isinstance(index, Tensor):
            index = index.array
        elif isinstance(index, tuple):
            index = tuple(i.array if isinstance(i, Tensor) else i for i in index)
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        xp = get_array_module(g)
        da = xp.zeros(self.shape, dtype=self.dtype)
        if _is_basic_index(self.index):
            da[self.index] = g
        else:  # advanced indexing may repeat positions: accumulate
            xp.add.at(da, self.index, g)
        return da


def expand_shape(shape, sizes):
    """The shape that expand(*sizes) gives a tensor of `shape` (-1 keeps a dim; new dims lead)."""
    sizes = int_sizes("expand", sizes, len(shape), shape)
    lead = len(sizes) - len(shape)
    out = []
    for i, s in enumerate(sizes):
        d = shape[i - lead] if i >= lead else None
        if d is None and s < 0:
            raise ValueError(f"expand: size {s} is not allowed for the new leading dim {i} "
                             f"(shape {tuple(shape)} to {sizes})")
        if d is not None and s == -1:
            s = d
        if s < 0 or (d is not None and d != s and d != 1):
            raise ValueError(f"expand: cannot expand dim {i} of size {d} to {s} (shape {tuple(shape)} to {sizes}); "
                             f"only size-1 dims can grow")
        out.append(s)
    return tuple(out)


class Expand(Function):
    """A broadcast (read-only) view of x; backward sums the gradient over the broadcast axes."""

    def forward(self, x, sizes=()):
        self.shape = x.shape
        return get_array_module(x).broadcast_to(x, sizes)  # (*new, *x.shape stretched)

    def backward(self, g):
        return unbroadcast(g, self.shape)


class Repeat(Function):
    """x tiled sizes[i] times along dim i (extra sizes add leading dims), as torch.Tensor.repeat."""

    def forward(self, x, sizes=()):
        self.shape, self.sizes = x.shape, sizes
        self.inner = (1,) * (len(sizes) - x.ndim) + x.shape  # (1, ..., *x.shape), one dim per size
        return get_array_module(x).tile(x.reshape(self.inner), sizes)  # (r0*s0, r1*s1, ...)

    def backward(self, g):
        split = [d for r, s in zip(self.sizes, self.inner) for d in (r, s)]
        g = g.reshape(split)  # (r0, s0, r1, s1, ...): copy k of element j sits at [k, j]
        return g.sum(axis=tuple(range(0, len(split), 2))).reshape(self.shape)


# ---- Tensor methods (bound in minires/methods.py) -----------------------------------------------

def getitem(self, index):
    try:
        return GetItem.apply(self, index=index)
    except IndexError as exc:  # IndexError, as PyTorch and Python's sequences (iteration stops on it)
        shown = index.array if isinstance(index, Tensor) else index  # the index as forward saw it
        raise IndexError(f"getitem: index {shown!r} is invalid for shape {self.shape} ({exc})") from None


def permute(self, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return Permute.apply(self, dims=permutation("permute", self, dims))


def transpose(self, dim0: int, dim1: int):
    if not (is_int(dim0) and is_int(dim1)):
        raise TypeError(f"transpose: dims must be ints, got {dim0!r}, {dim1!r}")
    dim0, dim1 = normalize_axes("transpose", dim0, self.ndim), normalize_axes("transpose", dim1, self.ndim)
    if self.ndim == 0:
        return self.reshape(())
    dims = list(range(self.ndim))
    dims[dim0[0]], dims[dim1[0]] = dims[dim1[0]], dims[dim0[0]]
    return self.permute(*dims)


def reversed_dims(self):
    """t.T: the dims in reverse order."""
    return self.permute(*reversed(range(self.ndim)))


def expand(self, *sizes):
    """A broadcast view with size-1 dims stretched to `sizes` (-1 keeps a dim; extra sizes lead)."""
    return Expand.apply(self, sizes=expand_shape(self.shape, sizes_arg(sizes)))


def expand_as(self, other):
    """expand(*other.shape)."""
    return self.expand(*other.shape)


def repeat(self, *sizes):
    """The tensor tiled sizes[i] times along dim i (extra sizes add leading dims); a copy."""
    sizes = int_sizes("repeat", sizes_arg(sizes), self.ndim, self.shape)
    if any(s < 0 for s in sizes):
        raise ValueError(f"repeat: sizes must be non-negative, got {sizes} for shape {self.shape}")
    return Repeat.apply(self, sizes=sizes)


def t(self):
    """The transpose of a tensor of at most 2 dims (a 0-d or 1-d tensor is returned as is), as PyTorch's t()."""
    if self.ndim > 2:
        raise ValueError(f"t: expects a tensor of at most 2 dimensions, got shape {self.shape}; use transpose(dim0, dim1)")
    return self.permute(*reversed(range(self.ndim)))
