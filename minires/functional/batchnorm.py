"""Batch normalisation over the channel axis of (N, C), (N, C, L) or (N, C, H, W) inputs."""
from __future__ import annotations

import numbers

from .. import _validate
from ..autograd import Function
from ..backend import get_array_module


class _Layout:
    """How per-channel math maps onto an input's memory: an (N, C, L) view, or (N*H, W*C) rows for channels-last.

    NOTE: conv2d returns NCHW views of NHWC memory. Reshaping those to (N, C, L) would be a full
    transpose copy, and the result would lose the layout that ReLU and the next conv's NHWC im2col
    read contiguously. Rows of W*C values (channel fastest) are views, and wide enough for NumPy's
    inner loops: (N*H*W, C) rows of only C = 16 values ran ~2x slower. Per-channel vectors are
    then tiled W times along a row.
    """

    def __init__(self, x):
        self.shape = x.shape
        self.cl = x.ndim == 4 and not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous
        self.C = x.shape[1]
        self.W = x.shape[3] if self.cl else 1

    def view(self, a):
        """a in this layout: (N, C, L) or (N*H, W*C); a view unless a is laid out differently."""
        if self.cl:
            N, C, H, W = self.shape
            return a.transpose(0, 2, 3, 1).reshape(N * H, W * C)  # (N*H, W*C)
        return a.reshape(self.shape[0], self.C, -1)  # (N, C, L)

    def unview(self, a):
        """Inverse of view for an array laid out like view's result: back to the input's shape."""
        if self.cl:
            N, C, H, W = self.shape
            return a.reshape(N, H, W, C).transpose(0, 3, 1, 2)  # (N, C, H, W) view of NHWC memory
        return a.reshape(self.shape)

    def bc(self, v):
        """Per-channel vector (C,) broadcastable against a viewed array."""
        return get_array_module(v).tile(v, self.W) if self.cl else v[:, None]

    def sum(self, a):
        """Per-channel sum of a viewed array -> (C,)."""
        if self.cl:
            return a.sum(axis=0).reshape(self.W, self.C).sum(axis=0)
        return a.sum(axis=(0, 2))

    def dot(self, a, b):
        """Per-channel sum of a * b for viewed arrays -> (C,), without an a * b temporary."""
        xp = get_array_module(a)
        if self.cl:
            return xp.einsum("mk,mk->k", a, b).reshape(self.W, self.C).sum(axis=0)
        return xp.einsum("ncl,ncl->c", a, b)


class BatchNorm(Function):
    name = "batch_norm"

    # Speed/memory: per-channel statistics are reductions of a view of x (no transpose, see
    # _Layout); full-size temporaries are avoided by working in place in the output buffer (fresh
    # 32 MB arrays cost a page-zeroing pass each). Backward keeps x (alive anyway as this node's
    # input) instead of a centred copy, and rebuilds x - mean in the dx buffer.

    def forward(self, x, w=None, b=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        L = _Layout(x)
        x3 = L.view(x)  # (N, C, L) or (N*H, W*C)
        M = x.size // x.shape[1]  # values per channel
        if training:
            mean = L.sum(x3) / M
            y = x3 - L.bc(mean)  # centred in the output buffer
            # NOTE: two-pass variance (centre, then square) avoids E[x^2] - E[x]^2 cancellation in float32.
            var = L.dot(y, y) / M
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * M / (M - 1)) * var  # the unbiased variance, as PyTorch
            invstd = 1 / xp.sqrt(var + eps)  # (C,)
            scale = invstd * w if w is not None else invstd
            y *= L.bc(scale)
            if b is not None:
                y += L.bc(b)
        else:
            mean = running_mean.copy()  # the caller may update running_mean before backward
            invstd = 1 / xp.sqrt(running_var + eps)
            scale = invstd * w if w is not None else invstd
            shift = -mean * scale
            if b is not None:
                shift += b
            y = x3 * L.bc(scale)
            y += L.bc(shift)
        self.x3, self.mean, self.invstd, self.scale = x3, mean, invstd, scale
        self.layout, self.M, self.training = L, M, training
        return L.unview(y)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad[:3]
        L = self.layout
        g3 = L.view(g)  # laid out like x3 (a copy only if g's layout differs from x's)
        invstd, scale, M = self.invstd, self.scale, self.M
        full_dx = need_x and self.training  # in training the statistics depend on x
        sum_g = L.sum(g3) if (need_b or full_dx) else None
        dx = sum_gxc = None
        if need_w or full_dx:
            xc = self.x3 - L.bc(self.mean)  # becomes dx below
            sum_gxc = L.dot(g3, xc)  # sum(g * (x - mean)) = sum(g * xhat) / invstd
        if full_dx:
            # dx = (w*invstd/M) * (M*g - sum(g) - xhat*sum(g*xhat)) with xhat = xc*invstd,
            # evaluated in place in the xc buffer: (xc*c1 + g + c0) * scale.
            dx = xc
            dx *= L.bc(-(invstd * invstd * sum_gxc) / M)
            dx += g3
            dx += L.bc(-sum_g / M)
            dx *= L.bc(scale)
        elif need_x:  # eval: the statistics are constants, so the map is a per-channel scale
            dx = g3 * L.bc(scale)
        dw = sum_gxc * invstd if need_w else None
        db = sum_g if need_b else None
        return (L.unview(dx) if dx is not None else None), dw, db


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

