"""Max, average and adaptive-average 2-D pooling (PyTorch semantics, NCHW): the reference implementations.

Windows are read one kernel offset at a time as strided views of the padded input (KH*KW views,
each one value per window).
"""
from __future__ import annotations

import math

from .. import _validate, dispatch
from ..backend import get_array_module
from ..tensor import Function
from .conv import conv_output_size


def pool_output_size(x_shape, kernel_size, stride, padding):
    """(OH, OW) of a pool over x (N, C, H, W): PyTorch's floor mode."""
    return tuple(conv_output_size(x_shape[2 + a], kernel_size[a], stride[a], padding[a], 1) for a in (0, 1))


def window(k: int, kernel_size, stride, out_size):
    """Index (all N, all C, rows, cols) of the input pixels at kernel offset k (row-major) of every window."""
    (i, j), (SH, SW), (OH, OW) = divmod(k, kernel_size[1]), stride, out_size
    return (slice(None), slice(None), slice(i, i + SH * (OH - 1) + 1, SH), slice(j, j + SW * (OW - 1) + 1, SW))


def padded(x, padding, fill):
    """x (N, C, H, W) padded by `fill` on each side; x itself when there is no padding."""
    PH, PW = padding
    if not PH and not PW:
        return x
    N, C, H, W = x.shape
    out = get_array_module(x).full((N, C, H + 2 * PH, W + 2 * PW), fill, dtype=x.dtype)
    out[:, :, PH:PH + H, PW:PW + W] = x
    return out


def unpadded(dxpad, padding, shape):
    """The (N, C, H, W) interior of a padded gradient."""
    PH, PW = padding
    return dxpad[:, :, PH:PH + shape[2], PW:PW + shape[3]]


def _scatter(xp, g_of_offset, geom, dtype):
    """dx (N, C, H, W): the sum over kernel offsets k of g_of_offset(k) (N, C, OH, OW) put back at k's pixels."""
    (N, C, H, W), (KH, KW), stride, (PH, PW), out_size = geom
    dxpad = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=dtype)
    for k in range(KH * KW):
        # One strided slice per offset hits each pixel once, so += is exact; offsets may overlap.
        dxpad[window(k, (KH, KW), stride, out_size)] += g_of_offset(k)
    return unpadded(dxpad, (PH, PW), (N, C, H, W))


class MaxPool2d(Function):
    """out = max over each window of the -inf padded input; the gradient goes to the window's first maximum."""

    name = "max_pool2d"
    input_names = ("input",)

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        xp = get_array_module(x)
        KH, KW = kernel_size
        out_size = pool_output_size(x.shape, kernel_size, stride, padding)
        self.geom = (x.shape, kernel_size, stride, padding, out_size)
        xpad = padded(x, padding, -math.inf)                                  # (N, C, H+2PH, W+2PW)
        out = xpad[window(0, kernel_size, stride, out_size)].copy()           # (N, C, OH, OW)
        self.idx = xp.zeros(out.shape, dtype=xp.int32)                       # kernel offset of the max
        for k in range(1, KH * KW):
            v = xpad[window(k, kernel_size, stride, out_size)]
            # NOTE: strict > keeps the first maximum on ties (PyTorch's rule); a NaN always wins
            # and so propagates, as in PyTorch's `val > max || isnan(val)`.
            better = (v > out) | xp.isnan(v)
            out[better] = v[better]
            self.idx[better] = k
        return out

    def backward(self, g):
        xp = get_array_module(g)
        return _scatter(xp, lambda k: xp.where(self.idx == k, g, 0), self.geom, g.dtype)


class AvgPool2d(Function):
    """out = sum over each zero-padded window / (KH*KW) (count_include_pad=True)."""

    name = "avg_pool2d"
    input_names = ("input",)

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        KH, KW = kernel_size
        out_size = pool_output_size(x.shape, kernel_size, stride, padding)
        self.geom = (x.shape, kernel_size, stride, padding, out_size)
        xpad = padded(x, padding, 0)                                          # (N, C, H+2PH, W+2PW)
        return sum(xpad[window(k, kernel_size, stride, out_size)] for k in range(KH * KW)) / (KH * KW)

    def backward(self, g):
        KH, KW = self.geom[1]
        share = g / (KH * KW)                                                 # (N, C, OH, OW)
        return _scatter(get_array_module(g), lambda k: share, self.geom, g.dtype)


def adaptive_bins(size: int, out: int):
    """PyTorch's adaptive bins [floor(i*size/out), ceil((i+1)*size/out)) for i < out."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPool2d(Function):
    """out[n, c, i, j] = mean of x over PyTorch's adaptive bin (i, j); bins may overlap."""

    name = "adaptive_avg_pool2d"
    input_names = ("input",)

    def forward(self, x, output_size=(1, 1)):
        xp = get_array_module(x)
        N, C, H, W = x.shape
        self.shape, self.bins = x.shape, (adaptive_bins(H, output_size[0]), adaptive_bins(W, output_size[1]))
        out = xp.empty((N, C) + tuple(output_size), dtype=x.dtype)
        for i, (h0, h1) in enumerate(self.bins[0]):
            for j, (w0, w1) in enumerate(self.bins[1]):
                out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return out

    def backward(self, g):
        dx = get_array_module(g).zeros(self.shape, dtype=g.dtype)
        for i, (h0, h1) in enumerate(self.bins[0]):
            for j, (w0, w1) in enumerate(self.bins[1]):
                dx[:, :, h0:h1, w0:w1] += g[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
        return dx


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over KH x KW windows of x (N, C, H, W); stride defaults to kernel_size, padding is -inf."""
    # As in PyTorch, only the batch may be empty (it gives an empty output).
    params = _validate.pool_args("max_pool2d", x, kernel_size, stride, padding, nonempty=(1, 2, 3))
    return dispatch.call(MaxPool2d, x, **params)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over KH x KW windows of x (N, C, H, W), zero padding counted (count_include_pad=True)."""
    return dispatch.call(AvgPool2d, x, **_validate.pool_args("avg_pool2d", x, kernel_size, stride, padding))


def adaptive_avg_pool2d(x, output_size):
    """Average x (N, C, H, W) into output_size (int or pair; None keeps that input size) bins."""
    op = "adaptive_avg_pool2d"
    _validate.tensor_arg(op, "input", x, ndim=4)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(x.shape[2 + k] if s is None else s for k, s in enumerate(output_size))
    output_size = _validate.pair(op, "output_size", output_size, 1)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{op}: input {x.shape} has an empty spatial dimension")
    return dispatch.call(AdaptiveAvgPool2d, x, output_size=output_size)


__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
