"""Argument checks shared by ops: each raises ValueError/TypeError naming the op and argument."""
from __future__ import annotations

import numbers

import numpy as np

from .tensor import Tensor


# Axes that must be non-empty for an op's main input: the kernels reduce over them without an
# identity (max_pool2d's NaN probe) or reshape with an inferred -1 (batch_norm's (N, C, -1) view),
# and would otherwise fail deep inside NumPy. Checked here because every such op calls tensor_arg.
# An empty batch is allowed, as in PyTorch: those ops return an empty output without running a kernel.
NONEMPTY_AXES = {("max_pool2d", "input"): (1, 2, 3), ("batch_norm", "input"): (1, 2, 3)}
_AXIS_NAMES = ("batch", "channel", "spatial", "spatial")
# add_relu's in-place maximum needs an array, and NumPy turns the sum of two 0-d arrays into a scalar.
MIN_NDIM = {("add_relu", "x"): 1, ("add_relu", "y"): 1}


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
    min_ndim = max(min_ndim, MIN_NDIM.get((op, name), 0))  # TEMP table until the ops declare it
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: argument '{name}' must have at least {min_ndim} dimension(s), "
                         f"got shape {x.shape}")
    for axis in tuple(nonempty) or NONEMPTY_AXES.get((op, name), ()):
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


def same_device(op: str, **tensors):
    """All given tensors (None skipped) live on one device."""
    items = {k: t for k, t in tensors.items() if t is not None}
    devices = {t.device for t in items.values()}
    if len(devices) > 1:
        desc = ", ".join(f"'{k}' {t.shape} on {t.device}" for k, t in items.items())
        raise ValueError(f"{op}: tensors must be on one device, got {desc}")


def same_dtype(op: str, **tensors):
    """All given tensors (None skipped) share one dtype."""
    items = {k: t for k, t in tensors.items() if t is not None}
    dtypes = {t.dtype for t in items.values()}
    if len(dtypes) > 1:
        desc = ", ".join(f"'{k}' {t.dtype}" for k, t in items.items())
        raise TypeError(f"{op}: tensors must share one dtype, got {desc}")
