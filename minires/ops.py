"""Tensor-level ops: arithmetic with broadcasting, reductions, shape ops, casts and device moves."""
from __future__ import annotations

import numpy as np

from . import backend
from .autograd import Function, unbroadcast
from .backend import get_array_module


def _normalize_axes(op: str, dim, ndim: int):
    """dim (None, int or tuple) -> tuple of non-negative axes, or None for all axes."""
    if dim is None:
        return None
    if isinstance(dim, (int, np.integer)) and not isinstance(dim, (bool, np.bool_)):
        dims = (dim,)
    elif isinstance(dim, (tuple, list)):
        dims = tuple(dim)
    else:
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
    out = []
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, (bool, np.bool_)):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"{op}: dim {d} is out of range for a tensor of {ndim} dimension(s)")
        out.append(int(d) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim!r} repeats an axis")
    if ndim == 0:  # dim 0 / -1 of a 0-d tensor names the tensor itself, as in PyTorch
        return ()
    return tuple(out)


def _keepdim(op: str, keepdim) -> bool:
    if not isinstance(keepdim, (bool, np.bool_)):
        raise TypeError(f"{op}: keepdim must be a bool, got {keepdim!r}")
    return bool(keepdim)


def _binary_shape(op: str, a, b):
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast together") from None


class Add(Function):
    def forward(self, a, b):
        _binary_shape("add", a, b)
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


class Sub(Function):
    def forward(self, a, b):
        _binary_shape("sub", a, b)
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(-g, self.b_shape)


class Mul(Function):
    def forward(self, a, b):
        _binary_shape("mul", a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        da = unbroadcast(g * self.b, self.a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(g * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    def forward(self, a, b):
        _binary_shape("div", a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        da = unbroadcast(g / self.b, self.a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(-g * self.a / (self.b * self.b), self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    def forward(self, a, b):
        _binary_shape("pow", a, b)
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        xp = get_array_module(g)
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(g * self.b * self.a ** (self.b - 1), self.a.shape)
        if self.needs_input_grad[1]:
            # NOTE: d(a^b)/db = a^b log a; taken as 0 where a == 0 (PyTorch's convention).
            log_a = xp.log(xp.where(self.a > 0, self.a, 1))
            db = unbroadcast(g * self.out * log_a, self.b.shape)
        return da, db


class Neg(Function):
    def forward(self, a):
        if a.dtype.kind == "b":
            raise TypeError(f"neg: negation of a bool tensor (shape {a.shape}) is not supported; use ~ or 1 - x")
        return -a

    def backward(self, g):
        return -g


class MatMul(Function):
    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: inner dimensions differ, got shapes {a.shape} and {b.shape}")
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: batch dimensions cannot be broadcast together, got shapes "
                             f"{a.shape} and {b.shape}") from None
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        # Promote 1-D operands to matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = g2[..., None, :] if b.ndim > 1 else g2[..., None]
        if b.ndim == 1:
            g2 = g2[..., None]
        da = db = None
        if self.needs_input_grad[0]:
            da = g2 @ b2.swapaxes(-1, -2)  # (..., M, K)
            da = unbroadcast(da, a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = a2.swapaxes(-1, -2) @ g2  # (..., K, N)
            db = unbroadcast(db, b2.shape).reshape(b.shape)
        return da, db


class Exp(Function):
    def forward(self, a):
        self.out = get_array_module(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return get_array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = get_array_module(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return abs(a)

    def backward(self, g):
        return g * get_array_module(g).sign(self.a)


class Sum(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape = a.shape
        self.axes = _normalize_axes("sum", dim, a.ndim)
        return a.sum(axis=self.axes, keepdims=_keepdim("sum", keepdim))

    def backward(self, g):
        xp = get_array_module(g)
        if self.axes is not None:
            g = g.reshape([1 if i in self.axes else s for i, s in enumerate(self.shape)])
        return xp.broadcast_to(g, self.shape).copy()


class Mean(Function):
    def forward(self, a, dim=None, keepdim=False):
        self.shape = a.shape
        self.axes = _normalize_axes("mean", dim, a.ndim)
        keepdim = _keepdim("mean", keepdim)
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
        self.axes = _normalize_axes("max", dim, a.ndim)
        keepdim = _keepdim("max", keepdim)
        if a.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {a.shape}")
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


def flatten_shape(op: str, shape, start_dim: int, end_dim: int):
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if not isinstance(d, (int, np.integer)) or isinstance(d, (bool, np.bool_)):
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


class Reshape(Function):
    def forward(self, a, shape=()):
        self.shape = a.shape
        try:
            return a.reshape(shape)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} into {tuple(shape)}") from None

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Function):
    def forward(self, a, dims=()):
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) for d in dims):
            raise TypeError(f"permute: dims must be ints, got {tuple(dims)!r}")
        if (len(dims) != a.ndim or not all(-a.ndim <= d < a.ndim for d in dims)
                or sorted(int(d) % a.ndim for d in dims) != list(range(a.ndim))):
            raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of the {a.ndim} axes of shape {a.shape}")
        self.dims = tuple(int(d) % a.ndim for d in dims)
        return a.transpose(self.dims)

    def backward(self, g):
        return g.transpose(tuple(int(i) for i in np.argsort(self.dims)))


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


class GetItem(Function):
    name = "getitem"

    def forward(self, a, index=None):
        from .tensor import Tensor
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as exc:  # IndexError, as PyTorch and Python's sequences (iteration stops on it)
            raise IndexError(f"getitem: index {index!r} is invalid for shape {a.shape} ({exc})") from None

    def backward(self, g):
        xp = get_array_module(g)
        da = xp.zeros(self.shape, dtype=self.dtype)
        if _is_basic_index(self.index):
            da[self.index] = g
        else:  # advanced indexing may repeat positions: accumulate
            xp.add.at(da, self.index, g)
        return da


class Cast(Function):
    def forward(self, a, dtype=None):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


class ToDevice(Function):
    name = "to"

    def forward(self, a, device="cpu"):
        self.device = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, g):
        return backend.to_device(g, self.device)
