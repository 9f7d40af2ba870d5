"""Small Tensor methods PyTorch scripts call: new_zeros, any/all, nonzero, nelement, stride, pin_memory, ...

NOTE: Tensor has no __getattr__ naming the torch.Tensor methods minires lacks (as modules have): a class
with __getattr__ makes every attribute access slower (CPython's slow lookup slot), 4% of a small op.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..creation import tensor as new_tensor_
from ..tensor import Tensor, _as_dtype
from .._validate import keepdim_arg, normalize_axes

def _like(self, size, dtype, device):
    """(shape, dtype, device) of a new_* tensor: self's dtype and device unless given."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    return shape, _as_dtype(dtype) or self.dtype, backend.parse_device(device or self.device)


def _new(fill, self, size, dtype, device, requires_grad):
    shape, dtype, device = _like(self, size, dtype, device)
    return Tensor(backend.to_device(fill(shape, dtype), device), requires_grad=requires_grad)


def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(np.zeros, self, size, dtype, device, requires_grad)


def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(np.ones, self, size, dtype, device, requires_grad)


def new_empty(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(np.empty, self, size, dtype, device, requires_grad)


def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(lambda s, d: np.full(s, fill_value, d), self, (size,), dtype, device, requires_grad)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new tensor copied from data, with self's dtype and device unless given."""
    return new_tensor_(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def _logical(op: str, self, dim, keepdim):
    axes = normalize_axes(op, dim, self.ndim)
    return Tensor(getattr(self.array.astype(bool), op)(axis=axes, keepdims=keepdim_arg(op, keepdim)))


def any_(self, dim=None, keepdim=False) -> Tensor:
    """Whether any element (along dim) is non-zero: a bool tensor outside the graph."""
    return _logical("any", self, dim, keepdim)


def all_(self, dim=None, keepdim=False) -> Tensor:
    """Whether every element (along dim) is non-zero: a bool tensor outside the graph."""
    return _logical("all", self, dim, keepdim)


def nonzero(self, as_tuple=False):
    """Indices of the non-zero elements: an (n, ndim) int64 tensor, or one index tensor per dim."""
    idx = self.array.nonzero()
    if as_tuple:
        return tuple(Tensor(i.astype(np.int64)) for i in idx)
    return Tensor(backend.get_array_module(self.array).stack(idx, axis=1).astype(np.int64))


def nelement(self) -> int:
    return self.numel()


def element_size(self) -> int:
    """Bytes per element."""
    return int(self.dtype.itemsize)


def stride(self, dim=None):
    """Strides in elements (PyTorch's unit), of every dim or of one."""
    strides = tuple(int(s) // self.dtype.itemsize for s in self.array.strides)
    return strides if dim is None else strides[dim]


def pin_memory(self) -> Tensor:
    """This tensor: minires has no page-locked host memory (copies to the GPU are synchronous)."""
    return self
