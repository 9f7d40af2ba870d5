"""Argument checks shared by ops: each raises ValueError/TypeError naming the op and argument."""
from __future__ import annotations

import numbers

import numpy as np


def tensor_arg(op: str, name: str, x, ndim=None, floating: bool = True):
    """Check that x is a Tensor (of one of the ranks in `ndim`, floating-point if asked)."""
    from .tensor import Tensor
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: argument '{name}' must be a Tensor, got {type(x).__name__}")
    if floating and x.dtype.kind != "f":
        raise TypeError(f"{op}: argument '{name}' must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in ranks:
            want = " or ".join(f"{r}-D" for r in ranks)
            raise ValueError(f"{op}: argument '{name}' must be {want}, got shape {x.shape}")
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
