"""Gradient utilities: clip_grad_norm_ and grad_sum_of_squares."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale gradients in place so their joint norm is at most max_norm; returns the norm before clipping as a
    0-d tensor of the gradients' dtype and device, as PyTorch (`foreach` is accepted and changes nothing)."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    for name, v in (("max_norm", max_norm), ("norm_type", norm_type)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"clip_grad_norm_: {name} must be a real number, got {v!r}")
    max_norm, norm_type = float(max_norm), float(norm_type)
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))
    xp = get_array_module(grads[0].array)
    if math.isinf(norm_type):
        total = max(float(xp.abs(g.array).max()) if g.array.size else 0.0 for g in grads)
    else:
        # NOTE: accumulate in float64 so many float32 gradients do not lose precision.
        total = float(sum(float((xp.abs(g.array.astype(xp.float64)) ** norm_type).sum()) for g in grads)) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} is non-finite ({total})")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.array *= g.array.dtype.type(coef)
    return Tensor(xp.asarray(total, dtype=grads[0].dtype))


def grad_sum_of_squares(parameters):
    """Sum of squares of every gradient as a device scalar (no host sync), or None without gradients.

    An inf or NaN anywhere makes it non-finite, so one float() of it checks them all. Squares
    overflow only for gradients above ~1e19 (float32), a diverged run anyway.
    """
    total = None
    for p in parameters:
        if p.grad is not None:
            g = p.grad.array.reshape(-1)
            sq = get_array_module(g).vdot(g, g)
            total = sq if total is None else total + sq
    return total
