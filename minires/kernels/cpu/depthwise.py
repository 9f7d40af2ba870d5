"""CPU fast path of depthwise conv2d (groups == in channels): shifted multiply-adds over channels-last data.

Why not the reference (functional/conv.py) or Conv2dCPU (conv.py): both build columns and multiply
them per group, and a depthwise group is one channel, so every GEMM is (rows, KH*KW) @ (KH*KW, m)
with m (the channel multiplier, usually 1) output columns: C tiny GEMMs (the reference), or a
(C, rows, 9) stack whose columns must first be gathered channel by channel (Conv2dCPU); MobileNetV2
trained 5.6x slower than PyTorch on them. A depthwise conv is only KH*KW multiply-adds per output
value: out[n, oh, ow, c] = sum over (i, j) of xpad[n, oh*SH + i*DH, ow*SW + j*DW, c] * w[c, i, j],
over channels-last data (C the inner, contiguous axis), a few images at a time so a chunk stays in
cache. The KH*KW windows are one strided view of the padded chunk (as_strided, no copy) and the sum
over them is one einsum; at stride 1 along W a window row is one run of OW*C values, so the einsum
runs over whole rows with the weights tiled along them.

Backward, with the same windows: dw[c, i, j] = sum over (n, oh, ow) of window_ij * g (one einsum);
dx at stride 1 is the full correlation of g (zero-bordered) with the flipped kernel, the forward's
window sum again, and at other strides g * w[c, i, j] scattered back offset by offset onto a padded
dx. Output channel o = c*m + k is input channel c's k-th filter. The output is an (N, O, OH, OW) view
of channels-last memory, as Conv2dCPU's is; the input may be in either layout. Each function below
runs in one thread on one part of the batch; DepthwiseConv2dCPU splits the batch over threads
(parallel.split).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ... import parallel
from ...functional.conv import Conv2d, ConvGeometry, output_size

# NOTE: images per chunk are chosen so a chunk's output is about CHUNK_BYTES. Forward of a
# 96-channel 3x3 layer at 32x32, batch 64, float32, one thread (ms, min of 7, a loaded machine):
# 1 image a chunk (384 KB) 38.1, 4 images (1.5 MB) 31.7, 16 images (6 MB) 55.9. Row blocks of one
# image (16 / 64 / 256 KB) took 157 / 88 / 74 in a later run where 4 images took 62.5: NumPy's
# per-call cost (KH*KW*2 calls a chunk) outweighs what the smaller working set saves.
CHUNK_BYTES = 3 * 2**19


def _chunk(N, per_image_bytes) -> int:
    """Images per chunk: about CHUNK_BYTES of output."""
    return max(1, min(N, CHUNK_BYTES // max(per_image_bytes, 1)))


def _windows(kernel_size, stride, dilation, out_size):
    """(i*KW + j, rows, cols) per kernel offset: the padded-input pixels it meets, one per output pixel."""
    (KH, KW), (SH, SW), (DH, DW), (OH, OW) = kernel_size, stride, dilation, out_size
    for i in range(KH):
        for j in range(KW):
            yield (i * KW + j, slice(i * DH, i * DH + SH * (OH - 1) + 1, SH),
                   slice(j * DW, j * DW + SW * (OW - 1) + 1, SW))


def _weights(w, C):
    """w (C*m, 1, KH, KW) -> (KH*KW, m, C), contiguous: offset ij's weights of filter k over the channels."""
    O, _, KH, KW = w.shape
    return np.ascontiguousarray(w.reshape(C, O // C, KH * KW).transpose(2, 1, 0))


def _pad(x, n0, n1, padding, xpad):
    """Copy images n0..n1 of x (N, C, H, W), either layout, into the zero-bordered xpad (B, Hp, Wp, C)."""
    H, W = x.shape[2:]
    (PH, PW), n = padding, n1 - n0
    xpad[:n, PH:PH + H, PW:PW + W, :] = x[n0:n1].transpose(0, 2, 3, 1)    # NCHW or NHWC memory -> NHWC
    return xpad[:n]


def _tiled(wk, OW):
    """wk (KH*KW, C) -> (KH, KW, OW*C): offset (i, j)'s weights repeated along a row of OW pixels."""
    return np.tile(wk[:, None, :], (1, OW, 1))


def _window_sum(xp, wk, kernel, stride, dilation, out):
    """out (n, OH, OW, C) = sum over offsets (i, j) of xp's window (i, j) times wk[i*KW + j] (C,): one einsum.

    xp (n, Hp, Wp, C) is dense. The windows are one strided view of it (no copy); at stride 1 along W a
    window row of OW pixels is one contiguous run of OW*C values, so einsum's inner loop runs over all of
    it (the weights tiled along the run) instead of over C alone.
    """
    n, _, _, C = xp.shape
    (KH, KW), (SH, SW), (DH, DW), (_, OH, OW, _) = kernel, stride, dilation, out.shape
    s0, s1, s2, s3 = xp.strides
    if SW == 1 and out.flags.c_contiguous:  # (out's reshape below is then a view)
        win = as_strided(xp, (n, OH, KH, KW, OW * C), (s0, SH * s1, DH * s1, DW * s2, s3))
        np.einsum("nhijk,ijk->nhk", win, _tiled(wk, OW).reshape(KH, KW, OW * C), out=out.reshape(n, OH, OW * C))
    else:
        win = as_strided(xp, (n, OH, OW, KH, KW, C), (s0, SH * s1, SW * s2, DH * s1, DW * s2, s3))
        np.einsum("nhwijc,ijc->nhwc", win, wk.reshape(KH, KW, C), out=out)


# NOTE: the einsum over strided windows replaced KH*KW multiplies into a scratch and adds (two passes
# over the chunk per offset). Forward of 3x3 stride-1 chunks, float32, one thread (ms, median of 15):
# 4x32x32x96 2.50 -> 0.66, 8x16x16x192 1.72 -> 0.63, 16x8x8x384 1.62 -> 0.66, 32x4x4x960 2.31 -> 0.81;
# the 6-d window einsum that any stride takes: 1.42, 0.99, 0.81, 0.83. dw likewise one einsum (0.78-0.88x).

def _forward(x, wt, kernel, stride, padding, dilation, out):
    """out (n, OH, OW, C, m) = depthwise conv of x (n, C, H, W) with weights wt (KH*KW, m, C), no bias."""
    N, C, H, W = x.shape
    m = wt.shape[1]
    OH, OW = out.shape[1:3]
    B = _chunk(N, OH * OW * C * m * x.dtype.itemsize)
    xpad = np.zeros((B, H + 2 * padding[0], W + 2 * padding[1], C), dtype=x.dtype)  # the border stays zero
    acc = np.empty((B, OH, OW, C), dtype=x.dtype) if m > 1 else None
    for n0 in range(0, N, B):
        n1 = min(N, n0 + B)
        n = n1 - n0
        xp = _pad(x, n0, n1, padding, xpad)
        for k in range(m):
            o = out[n0:n1].reshape(n, OH, OW, C) if m == 1 else acc[:n]      # contiguous (n, OH, OW, C)
            _window_sum(xp, wt[:, k], kernel, stride, dilation, o)
            if m > 1:
                out[n0:n1, :, :, :, k] = o


def _backward(x, g, wt, kernel, chw, stride, padding, dilation, dx, need_dw):
    """This part's dw (m, KH*KW, C) (None unless need_dw) and, if dx (n, H, W, C) is given, dx written."""
    (N, (C, H, W)), (PH, PW), (OH, OW) = (g.shape[0], chw), padding, g.shape[2:]
    (KH, KW), (SH, SW), (DH, DW) = kernel, stride, dilation
    m = g.shape[1] // C
    B = _chunk(N, OH * OW * C * m * g.dtype.itemsize)
    gt = g.transpose(0, 2, 3, 1)                                             # (N, OH, OW, O) view
    gbuf = None if gt.flags.c_contiguous and m == 1 else np.empty((m, B, OH, OW, C), dtype=g.dtype)
    dw = np.zeros((m, KH, KW, C), dtype=g.dtype) if need_dw else None
    xpad = np.zeros((B, H + 2 * PH, W + 2 * PW, C), dtype=g.dtype) if need_dw else None
    # dx at stride 1 (one filter per channel): the full correlation of g, zero-bordered by Q = (K-1)*D - P,
    # with the flipped kernel, i.e. a forward window sum; otherwise g * w scattered offset by offset. The
    # border's zeros meet every weight, so a non-finite weight (0 * inf) keeps the scatter, as the reference.
    QH, QW = (KH - 1) * DH - PH, (KW - 1) * DW - PW
    by_windows = (dx is not None and SH == SW == 1 and m == 1 and QH >= 0 and QW >= 0
                  and bool(np.isfinite(wt).all()))
    if by_windows:
        gpad = np.zeros((B, OH + 2 * QH, OW + 2 * QW, C), dtype=g.dtype)
        flipped = np.ascontiguousarray(wt[::-1, 0])                          # (KH*KW, C): offset (KH-1-i, KW-1-j)
    elif dx is not None:
        tmp = np.empty((B, OH, OW, C), dtype=g.dtype)
        dxpad = np.empty((B, H + 2 * PH, W + 2 * PW, C), dtype=g.dtype)
    for n0 in range(0, N, B):
        n1 = min(N, n0 + B)
        n = n1 - n0
        if gbuf is None:
            gks = [gt[n0:n1]]                                                # (n, OH, OW, C), contiguous
        else:  # filter k's gradient of every channel, contiguous: channel c is output c*m + k
            gbuf[:, :n] = gt[n0:n1].reshape(n, OH, OW, C, m).transpose(4, 0, 1, 2, 3)
            gks = [gbuf[k, :n] for k in range(m)]
        if need_dw:
            xp = _pad(x, n0, n1, padding, xpad)
            s0, s1, s2, s3 = xp.strides
            for k, gk in enumerate(gks):
                if SW == 1 and gk.flags.c_contiguous:  # window rows of OW*C values, as in _window_sum
                    win = as_strided(xp, (n, OH, KH, KW, OW * C), (s0, SH * s1, DH * s1, DW * s2, s3))
                    part = np.einsum("nhijk,nhk->ijk", win, gk.reshape(n, OH, OW * C))
                    dw[k] += part.reshape(KH, KW, OW, C).sum(axis=2)  # the OW pixels summed after
                else:
                    win = as_strided(xp, (n, OH, OW, KH, KW, C), (s0, SH * s1, SW * s2, DH * s1, DW * s2, s3))
                    dw[k] += np.einsum("nhwijc,nhwc->ijc", win, gk)
        if by_windows:
            gpad[:n, QH:QH + OH, QW:QW + OW] = gks[0]
            _window_sum(gpad[:n], flipped, kernel, (1, 1), dilation, dx[n0:n1])
        elif dx is not None:
            dxpad[:n].fill(0)
            for ij, rows, cols in _windows(kernel, stride, dilation, (OH, OW)):
                for k, gk in enumerate(gks):
                    np.multiply(gk, wt[ij, k], out=tmp[:n])
                    dxpad[:n, rows, cols] += tmp[:n]                          # one offset meets each pixel once
            dx[n0:n1] = dxpad[:n, PH:PH + H, PW:PW + W]
    return None if dw is None else dw.reshape(m, KH * KW, C)


def _split(fn, N, per_image):
    """fn(n0, n1) over parts of the batch, one per thread (no BLAS: element-wise passes only)."""
    return parallel.split(fn, N, item_size=per_image)


class DepthwiseConv2dCPU(Conv2d):
    """conv2d with groups == in channels on NumPy arrays: KH*KW shifted multiply-adds over channels-last data."""

    @classmethod
    def supports(cls, x, w, b=None, groups=1, **params):
        # float16 stays on Conv2dCPU (float32 GEMMs); an empty batch goes to the reference.
        arrays = [a for a in (x, w, b) if a is not None]
        return (all(isinstance(a, np.ndarray) for a in arrays) and x.shape[0] > 0 and groups > 1
                and groups == x.shape[1] and w.shape[1] == 1
                and all(a.dtype == x.dtype for a in arrays) and x.dtype in (np.float32, np.float64))

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, C, H, W = x.shape
        O, _, KH, KW = w.shape
        OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
        self.geom = ConvGeometry(x.shape, w.shape, stride, padding, dilation, groups)
        out = np.empty((N, OH, OW, C, O // C), dtype=x.dtype)                 # output c*m + k at [..., c, k]
        wt = _weights(w, C)
        _split(lambda n0, n1: _forward(x[n0:n1], wt, (KH, KW), stride, padding, dilation, out[n0:n1]), N,
               H * W * C * KH * KW)
        out = out.reshape(N, OH, OW, O)
        if b is not None:
            out += b
        self.x = x if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        return out.transpose(0, 3, 1, 2)                                     # (N, O, OH, OW) view of NHWC memory

    def backward(self, g):
        (N, C, H, W), (O, _, KH, KW), stride, padding, dilation, _ = self.geom
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        need_db = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        db = g.sum(axis=(0, 2, 3)) if need_db else None
        wt = _weights(self.w, C) if need_dx else None
        dxl = np.empty((N, H, W, C), dtype=g.dtype) if need_dx else None      # dx in channels-last memory

        def part(n0, n1):
            x = self.x[n0:n1] if need_dw else None
            return _backward(x, g[n0:n1], wt, (KH, KW), (C, H, W), stride, padding, dilation,
                               None if dxl is None else dxl[n0:n1], need_dw)

        partial = _split(part, N, H * W * C * KH * KW)
        dw = None
        if need_dw:
            dw = partial[0]
            for p in partial[1:]:
                dw += p
            dw = np.ascontiguousarray(dw.transpose(2, 0, 1)).reshape(O, 1, KH, KW)  # (C, m, KH*KW): o = c*m + k
        return (None if dxl is None else dxl.transpose(0, 3, 1, 2)), dw, db
