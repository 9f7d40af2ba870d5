"""Checks of the tensor ops' arguments: dims, keepdim, sizes, broadcasting, joins, reductions, permutations."""
from __future__ import annotations

import numbers

import numpy as np

from ..tensor import Tensor
from .core import is_int


# ---- dims, keepdim, sizes, broadcasting (the tensor ops) ----------------------------------------

def int_dim(op: str, dim) -> None:
    if not is_int(dim):
        raise TypeError(f"{op}: dim must be an int, got {dim!r} (amax reduces over several dims)")


def normalize_axes(op: str, dim, ndim: int):
    """dim (None, int or tuple) -> tuple of non-negative axes, or None for all axes."""
    if dim is None:
        return None
    if is_int(dim):
        dims = (dim,)
    elif isinstance(dim, (tuple, list)):
        dims = tuple(dim)
    else:
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
    out = []
    for d in dims:
        if not is_int(d):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"{op}: dim {d} is out of range for a tensor of {ndim} dimension(s)")
        out.append(int(d) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim!r} repeats an axis")
    if ndim == 0:  # dim 0 / -1 of a 0-d tensor names the tensor itself, as in PyTorch
        return ()
    return tuple(out)


def keepdim_arg(op: str, keepdim) -> bool:
    if not isinstance(keepdim, (bool, np.bool_)):
        raise TypeError(f"{op}: keepdim must be a bool, got {keepdim!r}")
    return bool(keepdim)


def sizes_arg(sizes):
    """expand(2, 3) and expand((2, 3)) alike."""
    return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)


def int_sizes(op: str, sizes, ndim: int, shape):
    """sizes (ints, at least one per dim of `shape`) as a tuple, or a TypeError/ValueError naming op."""
    sizes = tuple(sizes)
    if not all(is_int(s) for s in sizes):
        raise TypeError(f"{op}: sizes must be ints, got {sizes!r}")
    if len(sizes) < ndim:
        raise ValueError(f"{op}: {len(sizes)} sizes {sizes} given for a tensor of shape {tuple(shape)}; "
                         f"need at least {ndim}")
    return tuple(int(s) for s in sizes)


def broadcast_shape(op: str, *shapes):
    """np.broadcast_shapes, or a ValueError naming op and the shapes."""
    try:
        return np.broadcast_shapes(*(tuple(s) for s in shapes))
    except ValueError:
        desc = " and ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{op}: shapes {desc} cannot be broadcast together") from None


def dim_arg(op: str, dim, x) -> int:
    """dim as a non-negative axis of x, or ValueError/TypeError naming the op and x's shape.

    A 0-d x has dims 0 and -1, as in PyTorch."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (numbers.Integral, np.integer)):
        raise TypeError(f"{op}: argument 'dim' must be an int, got {dim!r}")
    n = max(x.ndim, 1)
    if not -n <= dim < n:
        raise ValueError(f"{op}: argument 'dim' ({dim}) is out of range for input of shape {x.shape}")
    return int(dim) % n


def matmul_shapes(op: str, a, b) -> None:
    """a @ b is defined: both at least 1-D, equal inner dims, batch dims that broadcast."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"{op}: both arguments need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"{op}: inner dimensions differ, got shapes {a.shape} and {b.shape}")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"{op}: batch dimensions cannot be broadcast together, got shapes "
                         f"{a.shape} and {b.shape}") from None


def broadcast_pair(op: str, a, b) -> None:
    """a's and b's shapes broadcast together (a ValueError naming op and the shapes, else nothing)."""
    broadcast_shape(op, a.shape, b.shape)


def any_tensor(op: str, name: str, x) -> Tensor:
    """x, a Tensor of any dtype."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: argument '{name}' must be a Tensor, got {type(x).__name__}")
    return x


def exact_ndim(op: str, ndim: int, **tensors) -> None:
    """Each of the named tensors is a Tensor of exactly ndim dimensions."""
    for name, x in tensors.items():
        if any_tensor(op, name, x).ndim != ndim:
            raise ValueError(f"{op}: '{name}' must be {ndim}-D, got shape {x.shape}")


# ---- joining and splitting ---------------------------------------------------------------------

def tensor_list(op: str, tensors) -> list:
    """A non-empty list or tuple of Tensors, as a list."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of Tensors, got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: element {i} must be a Tensor, got {type(t).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of tensors")
    return list(tensors)


def cat_axis(op: str, tensors, dim) -> int:
    """The axis along which tensors (of one rank >= 1, equal but for that axis) concatenate."""
    shapes = [tuple(x.shape) for x in tensors]
    if tensors[0].ndim == 0 or any(x.ndim != tensors[0].ndim for x in tensors):
        raise ValueError(f"{op}: tensors must have the same number (>= 1) of dimensions, got shapes {shapes}")
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    axis = normalize_axes(op, dim, tensors[0].ndim)[0]
    rest = {s[:axis] + s[axis + 1:] for s in shapes}
    if len(rest) > 1:
        raise ValueError(f"{op}: sizes of tensors must match except in dim {dim}, got shapes {shapes}")
    return axis


def split_dim(op: str, x, dim) -> int:
    """dim (an int) as a non-negative axis of x, which has at least one dimension."""
    if x.ndim == 0:
        raise ValueError(f"{op}: expects a tensor with at least one dimension, got shape ()")
    int_dim(op, dim)
    return normalize_axes(op, dim, x.ndim)[0]


# ---- reductions ----------------------------------------------------------------------------------

def nonempty(op: str, x) -> None:
    """x has at least one element (a reduction without an identity)."""
    if x.numel() == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {x.shape}")


def floating_reduction(op: str, x, dim, keepdim) -> tuple:
    """The axes (all of them for dim=None) of a reduction of the floating-point tensor x."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {x.dtype} (shape {x.shape})")
    axes = normalize_axes(op, dim, x.ndim)
    keepdim_arg(op, keepdim)
    return tuple(range(x.ndim)) if axes is None else axes


def norm_order(p) -> float:
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


def correction_arg(op: str, dim, unbiased, correction):
    """(dim, correction) from torch.var's arguments: unbiased=True (default) is correction=1."""
    if isinstance(dim, (bool, np.bool_)):  # var(False): the older var(unbiased) overload
        if unbiased is not None:
            raise TypeError(f"{op}: got unbiased twice ({dim!r} and {unbiased!r})")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: give unbiased or correction, not both")
    if unbiased is not None:
        if not isinstance(unbiased, (bool, np.bool_)):
            raise TypeError(f"{op}: unbiased must be a bool, got {unbiased!r}")
        return dim, 1 if unbiased else 0
    if correction is None:
        return dim, 1
    if isinstance(correction, (bool, np.bool_)) or not isinstance(correction, numbers.Real) or correction < 0:
        raise ValueError(f"{op}: correction must be a non-negative number, got {correction!r}")
    return dim, correction


def nonempty_dim(op: str, x, axis: int, dim) -> None:
    """x's axis (given by the user as dim) is not empty: max(dim)/min(dim) have something to pick."""
    if x.shape[axis] == 0:
        raise ValueError(f"{op}: cannot take the {op} along dim {dim} of size 0 (shape {x.shape})")


def selectable(op: str, x, axis) -> None:
    """argmax/argmin of x along axis (None: over all elements) has an element to pick."""
    if x.numel() == 0 and (axis is None or x.shape[axis] == 0):
        raise ValueError(f"{op}: cannot take the {op} of an empty tensor of shape {x.shape}")


# ---- shapes ------------------------------------------------------------------------------------

def permutation(op: str, x, dims) -> tuple:
    """dims, a permutation of x's axes (negative ones allowed), as non-negative axes."""
    if not all(is_int(d) for d in dims):
        raise TypeError(f"{op}: dims must be ints, got {tuple(dims)!r}")
    n = x.ndim
    if (len(dims) != n or not all(-n <= d < n for d in dims)
            or sorted(int(d) % n for d in dims) != list(range(n))):
        raise ValueError(f"{op}: dims {tuple(dims)} are not a permutation of the {n} axes of shape {x.shape}")
    return tuple(int(d) % n for d in dims)
