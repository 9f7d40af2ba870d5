"""Tensor-level ops: arithmetic with broadcasting, reductions, shape ops, casts and device moves."""
from __future__ import annotations

import numpy as np

from . import backend
from .tensor import Function, unbroadcast
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


class Clone(Function):
    """A C-contiguous copy (clone(), and contiguous() of a strided view); the gradient passes through."""

    def forward(self, x):
        return x.copy()  # NumPy and CuPy copy in C order by default

    def backward(self, g):
        return g


# ---- broadcasting shape ops ------------------------------------------------------------------------

def _int_sizes(op: str, sizes, ndim: int, shape):
    """sizes (ints, at least one per dim of `shape`) as a tuple, or a TypeError/ValueError naming op."""
    sizes = tuple(sizes)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in sizes):
        raise TypeError(f"{op}: sizes must be ints, got {sizes!r}")
    if len(sizes) < ndim:
        raise ValueError(f"{op}: {len(sizes)} sizes {sizes} given for a tensor of shape {tuple(shape)}; "
                         f"need at least {ndim}")
    return tuple(int(s) for s in sizes)


def expand_shape(shape, sizes):
    """The shape that expand(*sizes) gives a tensor of `shape` (-1 keeps a dim; new dims lead)."""
    sizes = _int_sizes("expand", sizes, len(shape), shape)
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
        return get_array_module(x).broadcast_to(x, expand_shape(x.shape, sizes))  # (*new, *x.shape stretched)

    def backward(self, g):
        return unbroadcast(g, self.shape)


class Repeat(Function):
    """x tiled sizes[i] times along dim i (extra sizes add leading dims), as torch.Tensor.repeat."""

    def forward(self, x, sizes=()):
        sizes = _int_sizes("repeat", sizes, x.ndim, x.shape)
        if any(s < 0 for s in sizes):
            raise ValueError(f"repeat: sizes must be non-negative, got {sizes} for shape {x.shape}")
        self.shape, self.sizes = x.shape, sizes
        self.inner = (1,) * (len(sizes) - x.ndim) + x.shape  # (1, ..., *x.shape), one dim per size
        return get_array_module(x).tile(x.reshape(self.inner), sizes)  # (r0*s0, r1*s1, ...)

    def backward(self, g):
        split = [d for r, s in zip(self.sizes, self.inner) for d in (r, s)]
        g = g.reshape(split)  # (r0, s0, r1, s1, ...): copy k of element j sits at [k, j]
        return g.sum(axis=tuple(range(0, len(split), 2))).reshape(self.shape)


# ---- joining and choosing --------------------------------------------------------------------------

class Cat(Function):
    """Concatenation along an existing dim; backward slices the gradient back into the inputs."""

    def forward(self, *xs, dim=0):
        shapes = [tuple(x.shape) for x in xs]
        if not xs:
            raise ValueError("cat: expected a non-empty list of tensors")
        if xs[0].ndim == 0 or any(x.ndim != xs[0].ndim for x in xs):
            raise ValueError(f"cat: tensors must have the same number (>= 1) of dimensions, got shapes {shapes}")
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"cat: dim must be an int, got {dim!r}")
        axis = _normalize_axes("cat", dim, xs[0].ndim)[0]
        rest = {s[:axis] + s[axis + 1:] for s in shapes}
        if len(rest) > 1:
            raise ValueError(f"cat: sizes of tensors must match except in dim {dim}, got shapes {shapes}")
        self.axis, self.sizes = axis, [s[axis] for s in shapes]
        return get_array_module(*xs).concatenate(xs, axis=axis)

    def backward(self, g):
        bounds = [int(b) for b in np.cumsum(self.sizes)[:-1]]
        return tuple(get_array_module(g).split(g, bounds, axis=self.axis))


class Where(Function):
    """cond ? a : b elementwise, all three broadcast; the gradient goes to the branch taken."""

    def forward(self, cond, a, b):
        try:
            np.broadcast_shapes(cond.shape, a.shape, b.shape)
        except ValueError:
            raise ValueError(f"where: condition {tuple(cond.shape)}, input {tuple(a.shape)} and other "
                             f"{tuple(b.shape)} cannot be broadcast together") from None
        self.cond, self.a_shape, self.b_shape = cond, a.shape, b.shape
        return get_array_module(cond, a, b).where(cond, a, b)

    def backward(self, g):
        xp = get_array_module(g)
        zero = xp.zeros((), dtype=g.dtype)
        da = unbroadcast(xp.where(self.cond, g, zero), self.a_shape) if self.needs_input_grad[1] else None
        db = unbroadcast(xp.where(self.cond, zero, g), self.b_shape) if self.needs_input_grad[2] else None
        return None, da, db


class Maximum(Function):
    """Elementwise larger of two broadcast tensors."""

    larger = True

    def forward(self, a, b):
        _binary_shape(self.op_name(), a, b)
        self.a, self.b = a, b
        xp = get_array_module(a, b)
        return xp.maximum(a, b) if self.larger else xp.minimum(a, b)

    def backward(self, g):
        xp = get_array_module(g)
        a, b = self.a, self.b
        # NOTE: a tie sends half the gradient to each input, as PyTorch's maximum/minimum do.
        share = xp.where((a > b) if self.larger else (a < b), 1.0, xp.where(a == b, 0.5, 0.0)).astype(g.dtype)
        da = unbroadcast(g * share, a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(g * (1 - share), b.shape) if self.needs_input_grad[1] else None
        return da, db


class Minimum(Maximum):
    """Elementwise smaller of two broadcast tensors."""

    larger = False


class Clamp(Function):
    """x limited to [lo, hi] (either may be None; numbers or broadcast arrays), as torch.clamp."""

    def forward(self, x, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError(f"clamp: at least one of min and max must be given (input shape {x.shape})")
        shapes = [tuple(getattr(v, "shape", ())) for v in (x, lo, hi) if v is not None]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"clamp: input, min and max shapes {shapes} cannot be broadcast together") from None
        xp = get_array_module(x, *[v for v in (lo, hi) if v is not None])
        self.x, self.lo, self.hi = x, lo, hi
        out = x if lo is None else xp.maximum(x, lo)
        return out if hi is None else xp.minimum(out, hi)  # lo > hi gives hi, as PyTorch

    def backward(self, g):
        xp = get_array_module(g)
        x, lo, hi = self.x, self.lo, self.hi
        zero = xp.zeros((), dtype=g.dtype)
        # PyTorch's rule: x gets the gradient where lo <= x <= hi (ends included); a bound where it wins.
        inside = xp.ones(g.shape, dtype=bool)
        if lo is not None:
            inside = inside & (x >= lo)
        if hi is not None:
            inside = inside & (x <= hi)
        dx = unbroadcast(xp.where(inside, g, zero), x.shape) if self.needs_input_grad[0] else None
        dlo = dhi = None
        if self.needs_input_grad[1]:
            wins = (x < lo) if hi is None else (x < lo) & (lo < hi)
            dlo = unbroadcast(xp.where(wins, g, zero), lo.shape)
        if self.needs_input_grad[2]:
            wins = (x > hi) if lo is None else (x > hi) | (hi < lo)
            dhi = unbroadcast(xp.where(wins, g, zero), hi.shape)
        return dx, dlo, dhi


# ---- statistics and norms --------------------------------------------------------------------------

def _reduced(op: str, x, dim, keepdim):
    """(axes, count, output shape without keepdim) of a reduction of x over dim (None: every axis)."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {x.dtype} (shape {x.shape})")
    axes = _normalize_axes(op, dim, x.ndim)
    _keepdim(op, keepdim)
    axes = tuple(range(x.ndim)) if axes is None else axes
    count = int(np.prod([x.shape[i] for i in axes]))
    return axes, count, tuple(s for i, s in enumerate(x.shape) if i not in axes)


class Var(Function):
    """Variance over dim with Bessel's `correction` (divide by N - correction), as torch.var."""

    def forward(self, x, dim=None, correction=1, keepdim=False):
        axes, n, out_shape = _reduced(self.op_name(), x, dim, keepdim)
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


def _norm_order(p):
    """p of a vector norm as a float (2 for "fro"), or a ValueError/TypeError naming norm."""
    if isinstance(p, str):
        if p == "fro":
            return 2.0
        raise ValueError(f"norm: p={p!r} is not supported (use a number, inf, -inf or 'fro')")
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"norm: p must be a number or 'fro', got {p!r}")
    p = float(p)
    if np.isnan(p) or (p < 0 and p != -np.inf):
        raise ValueError(f"norm: p must be >= 0, inf or -inf, got {p}")
    return p


class Norm(Function):
    """The vector p-norm over dim (all elements by default): sum(|x|^p)^(1/p), max|x| for inf,
    min|x| for -inf, the count of non-zeros for 0, as torch.norm with a numeric p."""

    def forward(self, x, p=2, dim=None, keepdim=False):
        p = _norm_order(p)
        axes, n, out_shape = _reduced("norm", x, dim, keepdim)
        if np.isinf(p) and n == 0:
            raise ValueError(f"norm: the {p}-norm of an empty reduction is undefined (shape {x.shape}, dim {dim})")
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


# ---- functional forms: mr.cat, mr.stack, mr.where, ... ----------------------------------------------

def _tensor_list(op: str, tensors):
    from .tensor import Tensor
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of Tensors, got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: element {i} must be a Tensor, got {type(t).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of tensors")
    return list(tensors)


def _tensor_arg(op: str, name: str, x):
    from .tensor import Tensor
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: argument '{name}' must be a Tensor, got {type(x).__name__}")
    return x


def cat(tensors, dim: int = 0):
    """Concatenate tensors of equal shape but for `dim` along that dim; differentiable."""
    return Cat.apply(*_tensor_list("cat", tensors), dim=dim)


def stack(tensors, dim: int = 0):
    """Join tensors of one shape along a new dim; differentiable."""
    tensors = _tensor_list("stack", tensors)
    shapes = [t.shape for t in tensors]
    if len(set(shapes)) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got shapes {shapes}")
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"stack: dim must be an int, got {dim!r}")
    ndim = tensors[0].ndim + 1
    if not -ndim <= dim < ndim:
        raise ValueError(f"stack: dim {dim} is out of range for stacking tensors of shape {shapes[0]}")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def where(condition, input=None, other=None):
    """input where condition is True, else other (tensors or numbers, broadcast); with the condition
    alone, the tuple of index tensors of its True elements, as torch.where."""
    from .tensor import Tensor
    from .creation import tensor
    cond = _tensor_arg("where", "condition", condition)
    if cond.dtype.kind != "b":
        raise TypeError(f"where: argument 'condition' must be a bool tensor, got dtype {cond.dtype}")
    if input is None and other is None:
        return tuple(Tensor(i) for i in cond.data.nonzero())
    if input is None or other is None:
        raise TypeError("where: give both input and other, or neither")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        dtype = tensor([input, other]).dtype  # two numbers: float32 if either is a float, as PyTorch
        input, other = (tensor(v, dtype=dtype, device=cond.device) for v in (input, other))
    elif not isinstance(input, Tensor):
        input = other._scalar(input, "where")
    elif not isinstance(other, Tensor):
        other = input._scalar(other, "where")
    return Where.apply(cond, input, other)


def maximum(input, other):
    """Elementwise maximum of two broadcast tensors (ties share the gradient)."""
    x = _tensor_arg("maximum", "input", input)
    return Maximum.apply(x, x._scalar(other, "maximum"))


def minimum(input, other):
    """Elementwise minimum of two broadcast tensors (ties share the gradient)."""
    x = _tensor_arg("minimum", "input", input)
    return Minimum.apply(x, x._scalar(other, "minimum"))


def exp(input):
    """Elementwise e**x."""
    return Exp.apply(_tensor_arg("exp", "input", input))


def log(input):
    """Elementwise natural logarithm."""
    return Log.apply(_tensor_arg("log", "input", input))
