"""CPU fast paths of the pools: blocks of the batch in parallel, branch-free max updates, GEMV global mean.

Why not the reference (functional/pooling.py): it reads the same strided windows on one core, updates
the running max by masked copies, averages adaptive bins one by one and returns NCHW arrays. Here
each kernel body works on one block of images [a, b) (parallel.split runs the blocks on the cores, once
per forward or backward call), the max is updated branch-free, the global mean is a GEMV and other
adaptive sizes two bin-matrix products, and outputs keep a channels-last input's layout.
"""
from __future__ import annotations

import numpy as np

from ... import parallel
from ...backend import get_array_module
from ...functional import pooling
from ...functional.pooling import padded, pool_output_size, unpadded, window
from ..shared import global_mean_backward
from .gemm import matmul


def _channels_last(x) -> bool:
    """Whether x (N, C, H, W) is a view of channels-last memory (a conv's output, minires or PyTorch style)."""
    return x.ndim == 4 and not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous


def _empty(shape, dtype, channels_last: bool):
    """An empty (N, C, H, W) array, laid out channels-last when asked."""
    if channels_last:
        N, C, H, W = shape
        return np.empty((N, H, W, C), dtype=dtype).transpose(0, 3, 1, 2)
    return np.empty(shape, dtype=dtype)


def _start(fn, x, kernel_size, stride, padding):
    """Save the pool's geometry as fn.geom (and x's layout as fn.channels_last); the empty output
    (N, C, OH, OW), laid out like x, and each kernel offset's window index.

    NOTE: keeping a channels-last input's layout spares the next conv a transpose of its input, and
    the conv's backward one of its gradient (the pool's dx is laid out like x too): ~1.5 s of an
    11 s airbench94 step at batch 1024 went to such copies when the pool returned NCHW."""
    out_size = pool_output_size(x.shape, kernel_size, stride, padding)
    fn.geom = (x.shape, kernel_size, stride, padding, out_size)
    fn.channels_last = _channels_last(x)
    windows = [window(k, kernel_size, stride, out_size) for k in range(kernel_size[0] * kernel_size[1])]
    return _empty(x.shape[:2] + out_size, x.dtype, fn.channels_last), windows


def _scatter_windows(values, geom, dtype, channels_last=False):
    """dx (N, C, H, W) of a pool: values(k, a, b, out) (b-a, C, OH, OW) added into the k-th kernel offset's windows.

    values writes into `out` when it is given (the disjoint case: straight into dx's strided
    window, no temporary) and returns a new array otherwise. [a, b) is a block of the batch:
    blocks run in parallel.
    """
    shape, (KH, KW), stride, padding, out_size = geom
    N, C, H, W = shape
    PH, PW = padding
    dxpad = _empty((N, C, H + 2 * PH, W + 2 * PW), dtype, channels_last)  # laid out like x
    disjoint = stride[0] >= KH and stride[1] >= KW  # windows do not overlap: assign, no add
    tiled = tuple(stride) == (KH, KW)  # the windows tile [0, OH*KH) x [0, OW*KW) of dxpad, no gaps
    rows, cols = KH * out_size[0], KW * out_size[1]

    def part(a, b):
        d = dxpad[a:b]
        if tiled:  # only the strips past the last windows (31 = 2*15 + 1 rows in airbench94) get zero
            # NOTE: zeroing those strips instead of the whole block (then written again by the windows)
            # took the backward of airbench94's max pools to 0.93x and 0.86x the CPU time (two runs of
            # bench_passes.py --clock cpu, in turns; 31x31 input: 0.88x, 0.79x).
            d[:, :, rows:].fill(0)
            d[:, :, :rows, cols:].fill(0)
        else:  # gaps between windows, or overlapping ones that add up: start from zero
            d.fill(0)
        for k in range(KH * KW):
            # One strided slice per offset hits each pixel once, so += is exact; offsets may overlap.
            w = window(k, (KH, KW), stride, out_size)
            if disjoint:
                values(k, a, b, d[w])
            else:
                d[w] += values(k, a, b, None)
    parallel.split_rows(part, dxpad)
    return unpadded(dxpad, padding, shape)


class MaxPool2dCPU(pooling.MaxPool2d):
    """Branch-free running max with an int8 argmax (int32 past 127 offsets), batch blocks in parallel."""

    @classmethod
    def supports(cls, x, **params):
        return isinstance(x, np.ndarray) and x.size > 0  # the NaN probe below reduces without an identity

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        out, windows = _start(self, x, kernel_size, stride, padding)       # (N, C, OH, OW)
        idx = np.zeros_like(out, dtype=np.int8 if len(windows) <= 127 else np.int32)  # laid out like out

        def part(a, b, has_nan=False):
            xpad, o, ix = padded(x[a:b], padding, -np.inf), out[a:b], idx[a:b]
            # NOTE: the first two offsets straight into o and ix (no copy of offset 0, no zeroed ix) measured
            # 0.95x and 0.99x the forward's CPU time, within the noise: not taken.
            o[...] = xpad[windows[0]]
            if has_nan:
                ix.fill(0)
            better = np.empty_like(o, dtype=bool)
            step = np.empty_like(o, dtype=np.int8)
            for k in range(1, len(windows)):
                v = xpad[windows[k]]                                          # strided view, no copy
                # NOTE: strict > keeps the first maximum on ties (PyTorch's rule); a NaN always wins
                # and so propagates, as in PyTorch's `val > max || isnan(val)`.
                np.greater(v, o, out=better)
                if has_nan:
                    better |= np.isnan(v)
                # Branch-free updates: masked copies with a random mask run ~4x slower on the CPU.
                np.maximum(o, v, out=o)  # NaN-propagating, equal to where(better, v, o)
                if ix.dtype == np.int8:
                    # NOTE: k grows, so the last offset that was better is the largest: ix = max(ix, k * better),
                    # two int8 calls (better viewed as int8: no cast) instead of four with a cast.
                    # Measured alone: 0.94x and 0.92x the forward's CPU time (bench_passes.py, in turns).
                    np.multiply(better.view(np.int8), np.int8(k), out=step)
                    np.maximum(ix, step, out=ix)
                else:
                    ix += better.astype(ix.dtype) * (ix.dtype.type(k) - ix)     # ix = k where better
            # NOTE: a NaN in a window reaches the output through maximum; only then does the block run
            # again with the isnan pass per offset (its argmax needs it). This check on the output took
            # the place of one on all of x (np.isnan(x.max()) first): 0.76x and 0.85x the forward's CPU time
            # (bench_passes.py, in turns).
            if not has_nan and o.size and np.isnan(o.max()):
                part(a, b, True)
        parallel.split_rows(part, x)
        self.idx = idx
        return out

    def backward(self, g):
        # g where this offset holds the window's maximum, else 0: a multiply by the boolean mask
        # writes straight into dx's window (no where() temporary). NOTE: inf * False is NaN where
        # 0 is due, so a non-finite g takes where() instead.
        finite = bool(np.isfinite(g).all())

        def values(k, a, b, out):
            if finite:
                return np.multiply(g[a:b], self.idx[a:b] == k, out=out)
            v = np.where(self.idx[a:b] == k, g[a:b], g.dtype.type(0))
            if out is None:
                return v
            out[...] = v
        return _scatter_windows(values, self.geom, g.dtype, self.channels_last)


class AvgPool2dCPU(pooling.AvgPool2d):
    """Running sums in place, batch blocks in parallel."""

    @classmethod
    def supports(cls, x, **params):
        return isinstance(x, np.ndarray)

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        out, windows = _start(self, x, kernel_size, stride, padding)       # (N, C, OH, OW)

        def part(a, b):
            xpad, o = padded(x[a:b], padding, 0), out[a:b]
            o[...] = xpad[windows[0]]
            for w in windows[1:]:
                o += xpad[w]
            o *= x.dtype.type(1.0 / len(windows))
        parallel.split_rows(part, x)
        return out

    def backward(self, g):
        KH, KW = self.geom[1]
        scale = g.dtype.type(1.0 / (KH * KW))
        return _scatter_windows(lambda k, a, b, out: np.multiply(g[a:b], scale, out=out), self.geom, g.dtype,
                                self.channels_last)


def _bin_matrix(size: int, out: int, dtype):
    """(out, size) averaging matrix of PyTorch's adaptive bins."""
    A = np.zeros((out, size), dtype=np.float64)
    for i, (start, end) in enumerate(pooling.adaptive_bins(size, out)):
        A[i, start:end] = 1.0 / (end - start)
    return A.astype(dtype)


def _global_mean(x):
    """x (N, C, H, W) -> per-image, per-channel mean (N, C, 1, 1) as a matrix-vector product.

    NOTE: NumPy's mean over the two trailing axes of NCHW memory runs one short reduction per
    (n, c): 2.9 ms for (128, 512, 4, 4) on this machine, against 0.3 ms for rows of H*W values
    times a vector of 1/(H*W). Channels-last memory (conv outputs) reduces over the H*W axis of
    (N, H*W, C) instead: 0.7 -> 0.4 ms. NaN and inf propagate as in a sum.
    """
    N, C, H, W = x.shape
    inv = np.full((H * W, 1), 1.0 / (H * W), dtype=x.dtype)                  # (H*W, 1)
    if x.flags.c_contiguous:
        return matmul(x.reshape(N * C, H * W), inv).reshape(N, C, 1, 1)
    nhwc = x.transpose(0, 2, 3, 1)
    if nhwc.flags.c_contiguous:
        return matmul(inv.T, nhwc.reshape(N, H * W, C)).reshape(N, C, 1, 1)  # (1, H*W) @ (N, H*W, C)
    return x.mean(axis=(2, 3), keepdims=True, dtype=x.dtype)


class AdaptiveAvgPool2dCPU(pooling.AdaptiveAvgPool2d):
    """Global mean as a GEMV (the ResNet head), other sizes as A_h @ x @ A_w^T (the bins are separable)."""

    @classmethod
    def supports(cls, x, **params):
        return isinstance(x, np.ndarray)

    def forward(self, x, output_size=(1, 1)):
        N, C, H, W = x.shape
        OH, OW = output_size
        self.geom = (x.shape, output_size)
        if (OH, OW) == (1, 1):  # global average pooling, the ResNet head
            self.channels_last = not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous
            return _global_mean(x)
        self.shape, self.bins = x.shape, (pooling.adaptive_bins(H, OH), pooling.adaptive_bins(W, OW))
        self.ah = _bin_matrix(H, OH, x.dtype)                                # (OH, H)
        self.aw = _bin_matrix(W, OW, x.dtype)                                # (OW, W)
        if not bool(np.isfinite(x).all()):
            # NOTE: the matrix form multiplies NaN/inf by the zeros of other bins and would spread
            # them everywhere; the reference's bin-by-bin loop keeps each one in its own bins.
            return super().forward(x, output_size)
        return self.ah @ x @ self.aw.T                                       # (N, C, OH, OW)

    def backward(self, g):
        (N, C, H, W), (OH, OW) = self.geom
        if (OH, OW) == (1, 1):
            return global_mean_backward(g, self.geom[0], self.channels_last)
        if not bool(np.isfinite(g).all()):  # the matrix form would spread NaN/inf over every pixel
            return super().backward(g)
        return self.ah.T @ g @ self.aw                                       # (N, C, H, W)
