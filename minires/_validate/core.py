"""The checks every op wrapper makes: a tensor argument, an int or a pair of ints, a reshape's shape.
The tensor ops' own (dims, sizes, broadcasting, joins, reductions) are in tensor_ops.py."""
from __future__ import annotations

import numbers

import numpy as np

from ..tensor import Tensor


_AXIS_NAMES = ("batch", "channel", "spatial", "spatial")


def tensor_arg(op: str, name: str, x, ndim=None, floating: bool = True, min_ndim: int = 0, nonempty=()):
    """Check that x is a Tensor (of one of the ranks in `ndim`, at least `min_ndim`), floating-point or else
    a real number type, with no empty axis among `nonempty` (axes the op reduces without an identity)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: argument '{name}' must be a Tensor, got {type(x).__name__}")
    if floating and x.dtype.kind != "f":
        raise TypeError(f"{op}: argument '{name}' must be a floating-point tensor, got dtype {x.dtype}")
    if not floating and x.dtype.kind not in "iuf":  # bool and complex have no order for max/relu
        raise TypeError(f"{op}: argument '{name}' must be a real (integer or floating-point) tensor, "
                        f"got dtype {x.dtype}")
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in ranks:
            want = " or ".join(f"{r}-D" for r in ranks)
            raise ValueError(f"{op}: argument '{name}' must be {want}, got shape {x.shape}")
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: argument '{name}' must have at least {min_ndim} dimension(s), "
                         f"got shape {x.shape}")
    for axis in nonempty:
        if axis < x.ndim and x.shape[axis] == 0:
            raise ValueError(f"{op}: argument '{name}' has an empty {_AXIS_NAMES[axis]} dimension, "
                             f"got shape {x.shape}")
    return x


def pair(op: str, name: str, value, minimum: int):
    """An int or a pair of ints, each >= minimum, as a tuple of two ints."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: argument '{name}' must be an int or a pair of ints, got {value!r}")
    if isinstance(value, (numbers.Integral, np.integer)):
        value = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool) for v in value):
        value = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{op}: argument '{name}' must be an int or a pair of ints, got {value!r}")
    if value[0] < minimum or value[1] < minimum:
        raise ValueError(f"{op}: argument '{name}' must be >= {minimum}, got {value}")
    return value



def int_arg(op: str, name: str, value, minimum: int) -> int:
    """An int (not a bool) >= minimum, as a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: argument '{name}' must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: argument '{name}' must be >= {minimum}, got {value}")
    return int(value)


def is_int(v) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


# ---- shapes ------------------------------------------------------------------------------------

def reshape_shape(op: str, x, shape) -> tuple:
    """shape (ints >= 0 and at most one -1) as a tuple with room for exactly x's elements."""
    bad = ValueError(f"{op}: cannot reshape a tensor of shape {x.shape} into {tuple(shape)}")
    if not all(is_int(s) for s in shape) or any(s < -1 for s in shape) or list(shape).count(-1) > 1:
        raise bad
    known = int(np.prod([s for s in shape if s != -1]))
    if (known != x.numel()) if -1 not in shape else (known == 0 or x.numel() % known):
        raise bad
    return tuple(int(s) for s in shape)
