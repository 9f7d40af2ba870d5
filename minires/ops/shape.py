"""Reshaping ops: reshape/view, flatten, squeeze and unsqueeze, all one Function (Reshape); permutes,
indexing, expand and repeat are in rearrange.py."""
from __future__ import annotations

import numpy as np

from ..tensor import Function
from .._validate import is_int, normalize_axes, reshape_shape


class Reshape(Function):
    def forward(self, a, shape=()):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


def flatten_shape(op: str, shape, start_dim: int, end_dim: int):
    """The shape after merging dims start_dim..end_dim into one."""
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if not is_int(d):
            raise TypeError(f"{op}: argument '{name}' must be an int, got {d!r}")
    ndim = len(shape)
    if ndim == 0:
        if not (-1 <= start_dim <= 0 and -1 <= end_dim <= 0):
            raise ValueError(f"{op}: start_dim={start_dim}, end_dim={end_dim} invalid for a 0-d tensor")
        return (1,)
    s, e = start_dim % ndim if -ndim <= start_dim < ndim else None, end_dim % ndim if -ndim <= end_dim < ndim else None
    if s is None or e is None or s > e:
        raise ValueError(f"{op}: start_dim={start_dim}, end_dim={end_dim} invalid for shape {tuple(shape)}")
    return tuple(shape[:s]) + (int(np.prod(shape[s:e + 1])),) + tuple(shape[e + 1:])


# ---- Tensor methods (bound in minires/methods.py) -----------------------------------------------

def reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(self, shape=reshape_shape("reshape", self, shape))


def flatten(self, start_dim: int = 0, end_dim: int = -1):
    return self.reshape(flatten_shape("flatten", self.shape, start_dim, end_dim))


def unsqueeze(self, dim: int):
    if not is_int(dim):
        raise TypeError(f"unsqueeze: dim must be an int, got {dim!r}")
    if not -self.ndim - 1 <= dim <= self.ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for a tensor of shape {self.shape}")
    shape = list(self.shape)
    shape.insert(dim if dim >= 0 else self.ndim + 1 + dim, 1)
    return self.reshape(shape)


def squeeze(self, dim=None):
    if dim is None:
        return self.reshape([s for s in self.shape if s != 1])
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"squeeze: dim must be an int or None, got {dim!r}")
    if self.ndim == 0:
        normalize_axes("squeeze", dim, 0)
        return self.reshape(())
    dim = normalize_axes("squeeze", dim, self.ndim)[0]
    shape = list(self.shape)
    if shape[dim] == 1:
        del shape[dim]
    return self.reshape(shape)


def view_as(self, other):
    """reshape(other.shape)."""
    return self.reshape(other.shape)
