"""Joining and splitting: cat and stack, split and chunk (differentiable slices)."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Function
from .._validate import cat_axis, is_int, split_dim, tensor_list
from .rearrange import GetItem


class Cat(Function):
    """Concatenation along an existing dim; backward slices the gradient back into the inputs."""

    def forward(self, *xs, dim=0):
        shapes = [tuple(x.shape) for x in xs]
        self.axis, self.sizes, self.dtypes = dim, [s[dim] for s in shapes], [x.dtype for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=dim)

    def backward(self, g):
        bounds = [int(b) for b in np.cumsum(self.sizes)[:-1]]
        parts = get_array_module(g).split(g, bounds, axis=self.axis)
        # NOTE: integer and float inputs concatenate in NumPy's promoted dtype: each part goes back to its own
        return tuple(part.astype(dtype, copy=False) for part, dtype in zip(parts, self.dtypes))


def cat(tensors, dim: int = 0):
    """Concatenate tensors of equal shape but for `dim` along that dim; differentiable."""
    tensors = tensor_list("cat", tensors)
    return Cat.apply(*tensors, dim=cat_axis("cat", tensors, dim))


def stack(tensors, dim: int = 0):
    """Join tensors of one shape along a new dim; differentiable."""
    tensors = tensor_list("stack", tensors)
    shapes = [t.shape for t in tensors]
    if len(set(shapes)) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got shapes {shapes}")
    if not is_int(dim):
        raise TypeError(f"stack: dim must be an int, got {dim!r}")
    ndim = tensors[0].ndim + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"stack: dim {dim} is out of range for stacking tensors of shape {shapes[0]}")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


# ---- Tensor methods (bound in minires/ops/__init__.py) -----------------------------------------------

def _slice(x, dim, start, stop):
    return GetItem.apply(x, index=(slice(None),) * dim + (slice(start, stop),))


def split(self, split_size_or_sections, dim=0):
    """Pieces along dim: of split_size each (the last may be smaller), or of the listed sizes."""
    dim = split_dim("split", self, dim)
    n, s = self.shape[dim], split_size_or_sections
    if is_int(s):
        if s < 0 or (s == 0 and n > 0):
            raise ValueError(f"split: split_size must be positive, got {s} for dim {dim} of shape {self.shape}")
        bounds = [(i, i + s) for i in range(0, n, s)] or [(0, 0)]
    elif isinstance(s, (list, tuple)) and all(is_int(k) for k in s):
        if any(k < 0 for k in s) or sum(s) != n:
            raise ValueError(f"split: sections {list(s)} must be non-negative and sum to the size {n} "
                             f"of dim {dim} of shape {self.shape}")
        ends = np.cumsum([0] + list(s)).tolist()
        bounds = list(zip(ends[:-1], ends[1:]))
    else:
        raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, got {s!r}")
    return tuple(_slice(self, dim, a, b) for a, b in bounds)


def chunk(self, chunks, dim=0):
    """Up to `chunks` pieces of ceil(size / chunks) along dim (the last may be smaller), as torch.chunk."""
    if not is_int(chunks):
        raise TypeError(f"chunk: chunks must be an int, got {chunks!r}")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks} (tensor of shape {self.shape})")
    dim = split_dim("chunk", self, dim)
    n = self.shape[dim]
    if n == 0:  # as PyTorch: `chunks` empty pieces
        return tuple(_slice(self, dim, 0, 0) for _ in range(chunks))
    return split(self, -(-n // chunks), dim)
