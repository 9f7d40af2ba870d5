"""Max, average and adaptive-average 2-D pooling (PyTorch semantics, NCHW), vectorised over kernel offsets."""
from __future__ import annotations

import numpy as np

from .. import _validate
from ..tensor import Function
from ..backend import get_array_module
from ..parallel import batch_parts
from .. import cuda
from ..cuda import ops as cuda_ops
from ..kernels.cpu.gemm import matmul
from ..kernels.cpu.im2col import conv_output_size


def _window(i: int, j: int, stride, out_size):
    """Index (all N, all C, rows, cols) of the input pixels at kernel offset (i, j) of every window."""
    (SH, SW), (OH, OW) = stride, out_size
    return (slice(None), slice(None), slice(i, i + SH * (OH - 1) + 1, SH), slice(j, j + SW * (OW - 1) + 1, SW))


def _out_size(x_shape, kernel_size, stride, padding):
    """(OH, OW) of a pool over x (N, C, H, W)."""
    return tuple(conv_output_size(x_shape[2 + a], kernel_size[a], stride[a], padding[a], 1) for a in (0, 1))


def _padded(x, padding, fill):
    """x (N, C, H, W) padded by `fill` on each side; x itself when there is no padding."""
    PH, PW = padding
    if not PH and not PW:
        return x
    xp = get_array_module(x)
    N, C, H, W = x.shape
    out = xp.full((N, C, H + 2 * PH, W + 2 * PW), fill, dtype=x.dtype)
    out[:, :, PH:PH + H, PW:PW + W] = x
    return out


def _unpad(dxpad, padding, shape):
    PH, PW = padding
    return dxpad[:, :, PH:PH + shape[2], PW:PW + shape[3]]


def _scatter_windows(xp, values, geom, dtype):
    """dx (N, C, H, W) of a pool: values(k, i, out) (n, C, OH, OW) added into the k-th kernel offset's windows.

    values writes into `out` when it is given (the disjoint case: straight into dx's strided
    window, no temporary) and returns a new array otherwise. i indexes a block of the batch:
    blocks run in parallel on the CPU (minires.parallel).
    """
    shape, (KH, KW), stride, padding, out_size = geom
    N, C, H, W = shape
    PH, PW = padding
    dxpad = xp.empty((N, C, H + 2 * PH, W + 2 * PW), dtype=dtype)
    disjoint = stride[0] >= KH and stride[1] >= KW  # windows do not overlap: assign, no add
    covered = tuple(stride) == (KH, KW) and (PH, PW) == (0, 0) and (H, W) == (KH * out_size[0], KW * out_size[1])

    def part(i):
        d = dxpad[i]
        if not covered:  # the windows leave pixels out: those get zero
            d.fill(0)
        for k in range(KH * KW):
            # One strided slice per offset hits each pixel once, so += is exact; offsets may overlap.
            window = _window(k // KW, k % KW, stride, out_size)
            if disjoint:
                values(k, i, d[window])
            else:
                d[window] += values(k, i, None)
    batch_parts(xp, dxpad, part)
    return _unpad(dxpad, padding, shape)


class MaxPool2d(Function):
    """out = max over each window of the -inf padded input; the gradient goes to the (first) max."""

    name = "max_pool2d"

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        KH, KW = kernel_size
        OH, OW = _out_size(x.shape, kernel_size, stride, padding)
        self.geom = (x.shape, kernel_size, stride, padding, (OH, OW))
        self.cuda = cuda.enabled(xp, x.dtype)
        if N == 0:  # an empty batch: no windows, and no kernel launch with an empty grid
            return xp.empty((0, C, OH, OW), dtype=x.dtype)
        if self.cuda:  # one thread per window, argmax saved (minires/cuda/kernels.cu)
            out, self.idx = cuda_ops.max_pool(cuda.launcher(), xp, x, kernel_size, stride, padding, (OH, OW))
            return out
        out = xp.empty((N, C, OH, OW), dtype=x.dtype)
        idx = xp.zeros(out.shape, dtype=np.int8 if KH * KW <= 127 else np.int32)
        has_nan = bool(xp.isnan(x.max()))  # one fast reduction; spares an isnan pass per offset

        def part(i):
            xpad, o, ix = _padded(x[i], padding, -np.inf), out[i], idx[i]
            o[...] = xpad[_window(0, 0, stride, (OH, OW))]
            better = xp.empty(o.shape, dtype=bool)
            for k in range(1, KH * KW):
                v = xpad[_window(k // KW, k % KW, stride, (OH, OW))]        # strided view, no copy
                # NOTE: strict > keeps the first maximum on ties (PyTorch's rule); a NaN always wins
                # and so propagates, as in PyTorch's `val > max || isnan(val)`.
                xp.greater(v, o, out=better)
                if has_nan:
                    better |= xp.isnan(v)
                # Branch-free updates: masked copies with a random mask run ~4x slower on the CPU.
                xp.maximum(o, v, out=o)  # NaN-propagating, equal to where(better, v, o)
                ix += better.astype(ix.dtype) * (ix.dtype.type(k) - ix)     # ix = k where better
        batch_parts(xp, x, part)
        self.idx = idx
        return out

    def backward(self, g):
        xp = get_array_module(g)
        if g.shape[0] == 0:
            return xp.zeros(self.geom[0], dtype=g.dtype)
        if self.cuda:  # forward's choice: the CPU path saves its argmax as int8
            shape, kernel_size, stride, padding, _ = self.geom
            return cuda_ops.max_pool_backward(cuda.launcher(), xp, g, self.idx, shape, kernel_size, stride, padding)
        # g where this offset holds the window's maximum, else 0: a multiply by the boolean mask
        # writes straight into dx's window (no where() temporary). NOTE: inf * False is NaN where
        # 0 is due, so a non-finite g takes where() instead.
        finite = bool(xp.isfinite(g).all())

        def values(k, i, out):
            if finite:
                return xp.multiply(g[i], self.idx[i] == k, out=out)
            v = xp.where(self.idx[i] == k, g[i], g.dtype.type(0))
            if out is None:
                return v
            out[...] = v
        return _scatter_windows(xp, values, self.geom, g.dtype)


class AvgPool2d(Function):
    """out = sum over each zero-padded window / (KH*KW) (count_include_pad=True)."""

    name = "avg_pool2d"

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        KH, KW = kernel_size
        OH, OW = _out_size(x.shape, kernel_size, stride, padding)
        out = xp.empty((N, C, OH, OW), dtype=x.dtype)

        def part(i):
            xpad, o = _padded(x[i], padding, 0), out[i]
            o[...] = xpad[_window(0, 0, stride, (OH, OW))]
            for k in range(1, KH * KW):
                o += xpad[_window(k // KW, k % KW, stride, (OH, OW))]
            o *= x.dtype.type(1.0 / (KH * KW))
        batch_parts(xp, x, part)
        self.geom = (x.shape, kernel_size, stride, padding, (OH, OW))
        return out

    def backward(self, g):
        KH, KW = self.geom[1]
        xp = get_array_module(g)
        scale = g.dtype.type(1.0 / (KH * KW))
        return _scatter_windows(xp, lambda k, i, out: xp.multiply(g[i], scale, out=out), self.geom, g.dtype)


def _bin_matrix(xp, size: int, out: int, dtype):
    """(out, size) averaging matrix of PyTorch's adaptive bins [floor(i*size/out), ceil((i+1)*size/out))."""
    A = np.zeros((out, size), dtype=np.float64)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        A[i, start:end] = 1.0 / (end - start)
    return xp.asarray(A.astype(dtype))


def _global_mean(xp, x):
    """x (N, C, H, W) -> per-image, per-channel mean (N, C, 1, 1) as a matrix-vector product.

    NOTE: NumPy's mean over the two trailing axes of NCHW memory runs one short reduction per
    (n, c): 2.9 ms for (128, 512, 4, 4) on this machine, against 0.3 ms for rows of H*W values
    times a vector of 1/(H*W). Channels-last memory (conv outputs) reduces over the H*W axis of
    (N, H*W, C) instead: 0.7 -> 0.4 ms. NaN and inf propagate as in a sum.
    """
    N, C, H, W = x.shape
    inv = xp.full((H * W, 1), 1.0 / (H * W), dtype=x.dtype)                  # (H*W, 1)
    if x.flags.c_contiguous:
        return matmul(x.reshape(N * C, H * W), inv).reshape(N, C, 1, 1)
    nhwc = x.transpose(0, 2, 3, 1)
    if nhwc.flags.c_contiguous:
        return matmul(inv.T, nhwc.reshape(N, H * W, C)).reshape(N, C, 1, 1)  # (1, H*W) @ (N, H*W, C)
    return x.mean(axis=(2, 3), keepdims=True, dtype=x.dtype)


class AdaptiveAvgPool2d(Function):
    """out[n, c, i, j] = mean of x over PyTorch's adaptive bin (i, j); separable, so A_h @ x @ A_w^T."""

    name = "adaptive_avg_pool2d"

    def forward(self, x, output_size=(1, 1)):
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OH, OW = output_size
        self.geom = (x.shape, output_size)
        if (OH, OW) == (1, 1):  # global average pooling, the ResNet head
            self.channels_last = not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous
            return _global_mean(xp, x)
        self.ah = _bin_matrix(xp, H, OH, x.dtype)                            # (OH, H)
        self.aw = _bin_matrix(xp, W, OW, x.dtype)                            # (OW, W)
        if not bool(xp.isfinite(x).all()):
            # NOTE: the matrix form multiplies NaN/inf by the zeros of other bins and would spread
            # them everywhere; bin by bin keeps each non-finite value in its own bins.
            out = xp.empty((N, C, OH, OW), dtype=x.dtype)
            for i in range(OH):
                h0, h1 = (i * H) // OH, -((-(i + 1) * H) // OH)
                for j in range(OW):
                    w0, w1 = (j * W) // OW, -((-(j + 1) * W) // OW)
                    out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
            return out
        return self.ah @ x @ self.aw.T                                       # (N, C, OH, OW)

    def backward(self, g):
        xp = get_array_module(g)
        (N, C, H, W), (OH, OW) = self.geom
        if (OH, OW) == (1, 1):
            share = g * g.dtype.type(1.0 / (H * W))                          # (N, C, 1, 1)
            if self.channels_last:  # dx laid out like x; C-value runs fill 4.7x faster than H*W-value runs at 4x4
                dx = xp.empty((N, H, W, C), dtype=g.dtype)
                dx[...] = share.reshape(N, 1, 1, C)
                return dx.transpose(0, 3, 1, 2)                              # (N, C, H, W) view of NHWC memory
            return xp.broadcast_to(share, (N, C, H, W)).copy()
        return self.ah.T @ g @ self.aw                                       # (N, C, H, W)


def _pool_args(op, x, kernel_size, stride, padding):
    _validate.tensor_arg(op, "input", x, ndim=4)
    kernel_size = _validate.pair(op, "kernel_size", kernel_size, 1)
    stride = kernel_size if stride is None else _validate.pair(op, "stride", stride, 1)
    padding = _validate.pair(op, "padding", padding, 0)
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel_size}")
    N, C, H, W = x.shape
    if H + 2 * padding[0] < kernel_size[0] or W + 2 * padding[1] < kernel_size[1]:
        raise ValueError(f"{op}: kernel {kernel_size} is larger than the padded input "
                         f"{(H + 2 * padding[0], W + 2 * padding[1])} (input {x.shape}, padding {padding})")
    return kernel_size, stride, padding


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over KH x KW windows of x (N, C, H, W); stride defaults to kernel_size, padding is -inf."""
    kernel_size, stride, padding = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over KH x KW windows of x (N, C, H, W), zero padding counted (count_include_pad=True)."""
    kernel_size, stride, padding = _pool_args("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def adaptive_avg_pool2d(x, output_size):
    """Average x (N, C, H, W) into output_size (int or pair; None keeps that input size) bins."""
    op = "adaptive_avg_pool2d"
    _validate.tensor_arg(op, "input", x, ndim=4)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(x.shape[2 + k] if s is None else s for k, s in enumerate(output_size))
    output_size = _validate.pair(op, "output_size", output_size, 1)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{op}: input {x.shape} has an empty spatial dimension")
    return AdaptiveAvgPool2d.apply(x, output_size=output_size)


__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
