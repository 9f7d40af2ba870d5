"""Argument checks shared by the tensor ops: dims, keepdim, sizes."""
from __future__ import annotations

import numpy as np


def is_int(v) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


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
