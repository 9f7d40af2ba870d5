"""Batch normalisation over the channel axis of (N, C), (N, C, L) or (N, C, H, W) inputs: the reference."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _validate, amp, dispatch
from ..backend import get_array_module
from ..tensor import Function


def update_running_stats(running_mean, running_var, mean, var, momentum, M) -> None:
    """In place, as PyTorch: new = (1 - momentum) * old + momentum * batch statistic, the variance unbiased."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += (momentum * M / (M - 1)) * var


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * w + b per channel: batch statistics in training, running ones in eval."""

    name = "batch_norm"
    input_names = ("input", "weight", "bias")

    def forward(self, x, w=None, b=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, math.prod(x.shape[2:]))  # (N, C, L); not -1, which an empty batch cannot infer
        if training:
            M = x3.shape[0] * x3.shape[2]  # values per channel
            # NOTE: per-channel sums accumulate in float64: a float32 sum over N*L values loses digits.
            mean = x3.mean(axis=(0, 2), dtype=xp.float64).astype(x.dtype)  # (C,)
            xc = x3 - mean[:, None]
            # NOTE: two-pass variance (centre, then square) avoids E[x^2] - E[x]^2 cancellation in float32.
            var = (xc * xc).mean(axis=(0, 2), dtype=xp.float64).astype(x.dtype)
            update_running_stats(running_mean, running_var, mean, var, momentum, M)
        else:
            xc, var = x3 - running_mean[:, None], running_var
        invstd = 1 / xp.sqrt(var + eps)  # (C,)
        xhat = xc * invstd[:, None]
        y = xhat * w[:, None] if w is not None else xhat
        if b is not None:
            y = y + b[:, None]
        self.xhat, self.invstd, self.w, self.training = xhat, invstd, w, training
        return y.reshape(x.shape)

    def backward(self, g):
        g3 = g.reshape(self.xhat.shape)  # (N, C, L)
        xp = get_array_module(g)
        db = g3.sum(axis=(0, 2), dtype=xp.float64).astype(g.dtype)  # float64 sums, as in forward
        # sums over no samples are zeros (an empty batch)
        dw = (g3 * self.xhat).sum(axis=(0, 2), dtype=xp.float64).astype(g.dtype)
        scale = self.invstd * self.w if self.w is not None else self.invstd  # dy/dxhat * dxhat/dx, per channel
        if self.training:  # the batch statistics depend on x: dx = scale * (g - mean(g) - xhat * mean(g * xhat))
            M = g3.shape[0] * g3.shape[2]
            dx = (g3 - db[:, None] / M - self.xhat * (dw[:, None] / M)) * scale[:, None]
        else:  # the running statistics are constants
            dx = g3 * scale[:, None]
        return dx.reshape(g.shape), dw, db


def _stat_dtypes(x):
    """The dtypes running statistics may have: x's, or float32 for float16 input under autocast, where
    batch_norm computes in float32 (minires.amp.POLICY)."""
    if x.dtype == np.float16 and amp.policy(BatchNorm.name) == "float32":
        return {x.dtype, np.dtype(np.float32)}
    return {x.dtype}


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Normalise each channel by its batch statistics (training) or running statistics (eval).

    In training, running_mean/running_var (if given) are updated in place:
    new = (1 - momentum) * old + momentum * batch_stat, with the unbiased batch variance.
    """
    # Empty channel or spatial axes are refused (nothing to normalise); an empty batch is allowed in eval.
    _validate.tensor_arg("batch_norm", "input", x, ndim=(2, 3, 4), nonempty=(1, 2, 3))
    rm = _validate.channel_arg("batch_norm", "running_mean", running_mean, x, _stat_dtypes(x))
    rv = _validate.channel_arg("batch_norm", "running_var", running_var, x, _stat_dtypes(x))
    _validate.channel_arg("batch_norm", "weight", weight, x)
    _validate.channel_arg("batch_norm", "bias", bias, x)
    for name, v in (("momentum", momentum), ("eps", eps)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"batch_norm: argument '{name}' must be a real number, got {v!r}")
    if eps <= 0:
        raise ValueError(f"batch_norm: argument 'eps' must be > 0, got {eps}")
    if training:
        if x.numel() // x.shape[1] <= 1:
            raise ValueError(f"batch_norm: Expected more than 1 value per channel when training, "
                             f"got input size {x.shape}")
    elif rm is None or rv is None:
        raise ValueError("batch_norm: running_mean and running_var are required when training=False")
    if (rm is None) != (rv is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    return dispatch.call(BatchNorm, x, weight, bias, running_mean=rm, running_var=rv, training=bool(training),
                         momentum=float(momentum), eps=float(eps))
