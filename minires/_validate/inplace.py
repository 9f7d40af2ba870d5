"""Checks of in-place writes (zero_, add_, t[i] = v, ...) and of conversions to a Python scalar."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..grad_mode import is_grad_enabled
from ..tensor import Tensor


def inplace_target(op: str, x, *others) -> None:
    """Under grad mode, neither x nor a Tensor operand requires grad (an in-place write records no graph)."""
    if not is_grad_enabled():
        return
    if x.requires_grad:
        raise RuntimeError(f"{op}: cannot modify a tensor that requires grad in place (shape {x.shape}): "
                           f"autograd would differentiate through overwritten values; do it inside "
                           f"mr.no_grad() or on t.detach()")
    if any(isinstance(o, Tensor) and o.requires_grad for o in others):
        raise RuntimeError(f"{op}: an in-place op does not record a graph, so its other operand must not "
                           f"require grad; do it inside mr.no_grad() or pass .detach()")


def inplace_operand(op: str, x, value, move=False):
    """A raw array or number to write into x's data; Tensors on another device move only if `move`."""
    if isinstance(value, Tensor):
        if value.device != x.device and not move:
            raise ValueError(f"{op}: the operand is on {value.device} but the tensor is on {x.device}")
        return backend.to_device(value.array, x.device) if value.device != x.device else value.array
    if isinstance(value, (numbers.Number, np.generic)):
        return value
    if isinstance(value, np.ndarray) or get_array_module(value) is not np:
        return backend.to_device(value, x.device)
    raise TypeError(f"{op}: expected a number or a Tensor, got {type(value).__name__}")


def writable(op: str, x, value_shape=()) -> None:
    """x's array may be written with an operand of value_shape: it broadcasts to x, and x is not read-only."""
    try:
        fits = np.broadcast_shapes(tuple(value_shape), tuple(x.shape)) == tuple(x.shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: an operand of shape {tuple(value_shape)} cannot be broadcast to the tensor's "
                         f"shape {x.shape}")
    if not getattr(getattr(x.array, "flags", None), "writeable", True):  # CuPy's flags have no writeable
        raise RuntimeError(f"{op}: the tensor (shape {x.shape}) is read-only (a broadcast view from expand, "
                           f"or read-only memory); clone() it first")


def fill_value(op: str, value):
    """fill_'s value: a number, or the item of a one-element Tensor."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{op}: value must be a number or a one-element tensor, got shape {value.shape}")
        value = value.item()
    if not isinstance(value, (numbers.Number, np.generic)):
        raise TypeError(f"{op}: value must be a number, got {type(value).__name__}")
    return value


def scalar_tensor(op: str, x) -> None:
    """x has exactly one element (int(t), float(t))."""
    if x.array.size != 1:
        raise ValueError(f"{op}: only one-element tensors can be converted to a Python scalar, got shape {x.shape}")
