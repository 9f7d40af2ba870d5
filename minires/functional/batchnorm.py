"""Batch normalisation over the channel axis of (N, C), (N, C, L) or (N, C, H, W) inputs."""
from __future__ import annotations

import numbers

from .. import _validate
from ..autograd import Function
from ..backend import get_array_module


class BatchNorm(Function):
    name = "batch_norm"

    # Speed/memory: per-channel statistics are reductions over axes (0, 2) of an (N, C, L) view (no
    # transpose); full-size temporaries are avoided by working in place in the output buffer (fresh
    # 32 MB arrays cost a page-zeroing pass each). Backward keeps x (alive anyway as this node's
    # input) instead of a centred copy, and rebuilds x - mean in the dx buffer.

    def forward(self, x, w=None, b=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, -1)  # (N, C, L), L = H*W; a view for contiguous x
        M = N * x3.shape[2]  # values per channel
        if training:
            mean = x3.sum(axis=(0, 2)) / M
            y = x3 - mean[:, None]  # (N, C, L), centred in the output buffer
            # NOTE: two-pass variance (centre, then square) avoids E[x^2] - E[x]^2 cancellation in float32.
            var = xp.einsum("ncl,ncl->c", y, y) / M
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * M / (M - 1)) * var  # the unbiased variance, as PyTorch
            invstd = 1 / xp.sqrt(var + eps)  # (C,)
            scale = invstd * w if w is not None else invstd
            y *= scale[:, None]
            if b is not None:
                y += b[:, None]
        else:
            mean = running_mean.copy()  # the caller may update running_mean before backward
            invstd = 1 / xp.sqrt(running_var + eps)
            scale = invstd * w if w is not None else invstd
            shift = -mean * scale
            if b is not None:
                shift += b
            y = x3 * scale[:, None]
            y += shift[:, None]
        self.x3, self.mean, self.invstd, self.scale = x3, mean, invstd, scale
        self.x_shape, self.M, self.training = x.shape, M, training
        return y.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        need_x, need_w, need_b = self.needs_input_grad[:3]
        g3 = g.reshape(self.x3.shape)  # (N, C, L)
        invstd, scale, M = self.invstd, self.scale, self.M
        full_dx = need_x and self.training  # in training the statistics depend on x
        sum_g = g3.sum(axis=(0, 2)) if (need_b or full_dx) else None
        dx = sum_gxc = None
        if need_w or full_dx:
            xc = self.x3 - self.mean[:, None]  # (N, C, L), becomes dx below
            sum_gxc = xp.einsum("ncl,ncl->c", g3, xc)  # sum(g * (x - mean)) = sum(g * xhat) / invstd
        if full_dx:
            # dx = (w*invstd/M) * (M*g - sum(g) - xhat*sum(g*xhat)) with xhat = xc*invstd,
            # evaluated in place in the xc buffer: (xc*c1 + g + c0) * scale.
            dx = xc
            dx *= (-(invstd * invstd * sum_gxc) / M)[:, None]
            dx += g3
            dx += (-sum_g / M)[:, None]
            dx *= scale[:, None]
        elif need_x:  # eval: the statistics are constants, so the map is a per-channel scale
            dx = g3 * scale[:, None]
        dw = sum_gxc * invstd if need_w else None
        db = sum_g if need_b else None
        return (dx.reshape(self.x_shape) if dx is not None else None), dw, db


def _channel_arg(name, t, x, C):
    if t is None:
        return None
    _validate.tensor_arg("batch_norm", name, t)
    if t.shape != (C,):
        raise ValueError(f"batch_norm: argument '{name}' must have shape ({C},) for input of shape "
                         f"{x.shape}, got {t.shape}")
    return t


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Normalise each channel by its batch statistics (training) or running statistics (eval).

    In training, running_mean/running_var (if given) are updated in place:
    new = (1 - momentum) * old + momentum * batch_stat, with the unbiased batch variance.
    """
    _validate.tensor_arg("batch_norm", "input", x, ndim=(2, 3, 4))
    C = x.shape[1]
    _channel_arg("running_mean", running_mean, x, C)
    _channel_arg("running_var", running_var, x, C)
    _channel_arg("weight", weight, x, C)
    _channel_arg("bias", bias, x, C)
    tensors = dict(input=x, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    _validate.same_device("batch_norm", **tensors)
    _validate.same_dtype("batch_norm", **tensors)
    for name, v in (("momentum", momentum), ("eps", eps)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"batch_norm: argument '{name}' must be a real number, got {v!r}")
    if eps <= 0:
        raise ValueError(f"batch_norm: argument 'eps' must be > 0, got {eps}")
    if training:
        M = x.numel() // C if C else 0
        if M <= 1:
            raise ValueError(f"batch_norm: Expected more than 1 value per channel when training, "
                             f"got input size {x.shape}")
    elif running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are required when training=False")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    return BatchNorm.apply(x, weight, bias,
                           running_mean=None if running_mean is None else running_mean.data,
                           running_var=None if running_var is None else running_var.data,
                           training=bool(training), momentum=float(momentum), eps=float(eps))

