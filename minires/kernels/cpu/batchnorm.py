"""CPU fast path of batch_norm: statistics of a view of x (channels-last aware), work in place, rows over threads.

Speed/memory against the reference (minires/functional/batchnorm.py): per-channel statistics are
reductions of a view of x (no transpose, see _Layout); full-size temporaries are avoided by working
in place in the output buffer (fresh 32 MB arrays cost a page-zeroing pass each). Backward keeps x
(alive anyway as this node's input) instead of a centred copy, and rebuilds x - mean in the dx
buffer. Every pass runs over row blocks in parallel (minires.parallel.split); partial sums are
added per channel.

NOTE (measured, not taken; benchmarks/bench_passes.py, in turns, 2-vCPU EPYC): cache-sized pieces of
2**15 to 2**22 values, x - mean rebuilt per piece in a scratch and the affine done piece by piece (4
passes through memory in the forward instead of 8, 5 instead of 14 in the backward), ran 1.02-1.33x
the forward's time and 1.06-1.27x the backward's at batch 256 and 1024: the extra NumPy calls and the
recomputed x - mean cost more than the passes, which stream at ~30 GB/s. Per-channel dots as
multiply-into-a-piece plus sum ran 1.5-1.8x einsum's time. numexpr (optional) for the affine
"(x - m) * s + b" in one pass over (3840, 960) float32: 20.5 ms wall / 10.3 ms CPU against 9.3 / 3.9
for the three in-place NumPy calls here on 2 threads, so not used.
"""
from __future__ import annotations

import numpy as np

from ... import parallel
from ...functional.batchnorm import BatchNorm, update_running_stats


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
        return np.tile(v, self.W) if self.cl else v[:, None]

    def sum(self, a):
        """Per-channel sum of a viewed array -> (C,)."""
        if self.cl:
            return a.sum(axis=0).reshape(self.W, self.C).sum(axis=0)
        return a.sum(axis=(0, 2))

    def dot(self, a, b):
        """Per-channel sum of a * b for viewed arrays -> (C,), without an a * b temporary."""
        if self.cl:
            return np.einsum("mk,mk->k", a, b).reshape(self.W, self.C).sum(axis=0)
        return np.einsum("ncl,ncl->c", a, b)


def _add_pairs(parts):
    """[(s_g, s_gxc) per row block] -> their per-channel totals."""
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


class BatchNormCPU(BatchNorm):
    """batch_norm on NumPy arrays, in place over row blocks split across threads."""

    @classmethod
    def supports(cls, x, w=None, b=None, running_mean=None, running_var=None, **params):
        arrays = (x, w, b, running_mean, running_var)
        return x.shape[0] > 0 and all(a is None or isinstance(a, np.ndarray) for a in arrays)  # the reference takes empty batches

    def forward(self, x, w=None, b=None, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5):
        L = _Layout(x)
        x3 = L.view(x)  # (N, C, L) or (N*H, W*C)
        M = x.size // x.shape[1]  # values per channel
        y = np.empty_like(x3)
        if training:
            mean = parallel.split_rows(lambda r0, r1: L.sum(x3[r0:r1]), x3, reduce=sum) / M
            mean_bc = L.bc(mean)

            def centre(r0, r1):  # y = x - mean, in the output buffer
                np.subtract(x3[r0:r1], mean_bc, out=y[r0:r1])
                return L.dot(y[r0:r1], y[r0:r1])
            # NOTE: two-pass variance (centre, then square) avoids E[x^2] - E[x]^2 cancellation in float32.
            var = parallel.split_rows(centre, x3, reduce=sum) / M
            update_running_stats(running_mean, running_var, mean, var, momentum, M)
            invstd = 1 / np.sqrt(var + eps)  # (C,)
            scale = invstd * w if w is not None else invstd
            scale_bc, shift_bc = L.bc(scale), (L.bc(b) if b is not None else None)

            def affine(r0, r1):
                y[r0:r1] *= scale_bc
                if shift_bc is not None:
                    y[r0:r1] += shift_bc
            parallel.split_rows(affine, x3)
        else:
            mean = running_mean.copy()  # the caller may update running_mean before backward
            invstd = 1 / np.sqrt(running_var + eps)
            scale = invstd * w if w is not None else invstd
            shift = -mean * scale
            if b is not None:
                shift += b
            scale_bc, shift_bc = L.bc(scale), L.bc(shift)

            def affine(r0, r1):
                np.multiply(x3[r0:r1], scale_bc, out=y[r0:r1])
                y[r0:r1] += shift_bc
            parallel.split_rows(affine, x3)
        self.x3, self.mean, self.invstd, self.scale = x3, mean, invstd, scale
        self.layout, self.M, self.training = L, M, training
        return L.unview(y)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        L = self.layout
        g3 = L.view(g)  # laid out like x3 (a copy only if g's layout differs from x's)
        x3, invstd, scale, M = self.x3, self.invstd, self.scale, self.M
        full_dx = need_x and self.training  # in training the statistics depend on x
        need_sum_g, need_dot = need_b or full_dx, need_w or full_dx
        dx = np.empty_like(x3) if need_x else None
        mean_bc = L.bc(self.mean)

        def sums(r0, r1):
            s_g = L.sum(g3[r0:r1]) if need_sum_g else 0
            s_gxc = 0
            if need_dot:  # sum(g * (x - mean)) = sum(g * xhat) / invstd; x - mean goes in dx's buffer
                xc = np.subtract(x3[r0:r1], mean_bc, out=dx[r0:r1] if full_dx else None)
                s_gxc = L.dot(g3[r0:r1], xc)
            return s_g, s_gxc
        sum_g, sum_gxc = parallel.split_rows(sums, x3, reduce=_add_pairs) if (need_sum_g or need_dot) else (0, 0)
        if full_dx:
            # dx = (w*invstd/M) * (M*g - sum(g) - xhat*sum(g*xhat)) with xhat = xc*invstd,
            # evaluated in place in the xc buffer: (xc*c1 + g + c0) * scale.
            c1 = L.bc(-(invstd * invstd * sum_gxc) / M)
            c0, scale_bc = L.bc(-sum_g / M), L.bc(scale)

            def finish(r0, r1):
                d = dx[r0:r1]
                d *= c1
                d += g3[r0:r1]
                d += c0
                d *= scale_bc
            parallel.split_rows(finish, x3)
        elif need_x:  # eval: the statistics are constants, so the map is a per-channel scale
            scale_bc = L.bc(scale)
            parallel.split_rows(lambda r0, r1: np.multiply(g3[r0:r1], scale_bc, out=dx[r0:r1]), x3)
        dw = sum_gxc * invstd if need_w else None
        db = sum_g if need_b else None
        return (L.unview(dx) if dx is not None else None), dw, db
