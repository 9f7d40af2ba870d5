"""CPU fast path of grouped conv2d (1 < groups < in channels): per-group columns gathered in one copy, one batched GEMM.

Why not Conv2dCPU (conv.py): for groups > 1 it builds channels-last columns (rows, KH, KW, C),
copies them again into a (G, rows, KH*KW*Cg) stack, multiplies, and copies the (G, rows, Og)
product back into rows: three passes over the columns and the output where a GEMM of depth
KH*KW*Cg (72 for RegNetX's 8-channel groups) is cheap. Here one strided view of the padded
channels-last input is copied straight into the (G, rows, KH*KW*Cg) stack, and np.matmul writes
each group's (rows, Og) product into its column block of the output rows (BLAS takes the row
stride O), so the product needs no copy; dw is cols^T @ g with g's rows read the same way.

Narrow groups make narrow GEMMs (Og = 4 or 8 columns) that BLAS runs far below its peak, so
neighbouring groups are merged into blocks of `b` groups multiplied as one dense conv with zero
weights between groups: b times the multiplies, but GEMMs b times wider and copies with b times
longer runs (see BLOCK_CHANNELS). dx is, for stride 1, the same grouped conv of g with the flipped
kernel; else g @ (each offset's weights)^T, one GEMM per offset, added onto a padded dx.
The output is an (N, O, OH, OW) view of channels-last memory, as Conv2dCPU's is. Each function
runs in one thread on one part of the batch; GroupedConv2dCPU splits the batch (parallel.split).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ... import parallel, tuning
from ...functional.conv import Conv2d, ConvGeometry, output_size

# NOTE: blocks of b groups: b*Cg = BLOCK_CHANNELS (16) input channels where whole groups make it,
# or a divisor of the groups giving 16..BLOCK_CHANNELS_MAX (24); else blocks of 16 // Cg groups and
# one smaller block of the groups left over. Forward, batch 64, float32, one thread, 3x3 stride 1
# (ms, min of 7 on a loaded 2-core machine; Conv2dCPU / blocks of 1 / 2 / 4 / all groups):
#   C=24, 3 groups at 32x32:    44.7 / 35.1 / -    / -     / 23.2 (b=3, 24 channels)
#   C=56, 7 groups at 32x32:   103.5 / 76.0 / -    / -     / 101.9
#   C=368, 46 groups at 8x8:    56.6 / 26.6 / 21.8 / -     / 190.1 (b=2, 16 channels)
#   C=128, 32 groups at 32x32: 547.9 / 287.4 / 157.6 / 145.7 / 517.9 (b=4, 16 channels)
#   C=512, 32 groups at 8x8:   123.2 / 42.7 / 48.5 / 83.3 / 510.0 (b=1, 16 channels)
# and with groups padded to an even count (in turns, min of 7): 19 groups of 8 at 16x16 89.9 ms
# in blocks of 1, 20 groups 74.8 in blocks of 2 (86.1 in 4); 7 groups at 32x32 96.6, 8 groups 82.3
# in blocks of 2 (100.4 in 4): what the left-over block buys without the padding.
BLOCK_CHANNELS = 16
BLOCK_CHANNELS_MAX = 24


def block_size(G, Cg) -> int:
    """Groups per block (see the note above); the last block of pieces() may hold fewer."""
    fits = [b for b in range(1, G + 1) if G % b == 0 and BLOCK_CHANNELS <= b * Cg <= BLOCK_CHANNELS_MAX]
    return max(fits) if fits else max(1, min(G, BLOCK_CHANNELS // Cg))


def pieces(G, Cg) -> list:
    """[(g0, g1, b)]: groups g0..g1-1 multiplied in blocks of b; the whole blocks, then the groups left over."""
    b = block_size(G, Cg)
    whole = G - G % b
    return [(0, whole, b)] + ([(whole, G, G - whole)] if whole < G else [])


def block_weights(w, G, b):
    """w (O, Cg, KH, KW) -> (G/b, KH*KW*b*Cg, b*Og): each block's dense GEMM operand, zero between groups."""
    O, Cg, KH, KW = w.shape
    Og = O // G
    w6 = w.reshape(G // b, b, Og, Cg, KH, KW)
    wb = np.zeros((G // b, KH, KW, b, Cg, b, Og), dtype=w.dtype)
    for k in range(b):  # group k of each block: its channels k*Cg.. meet its outputs k*Og..
        wb[:, :, :, k, :, k, :] = w6[:, k].transpose(0, 3, 4, 2, 1)         # (G/b, KH, KW, Cg, Og)
    return wb.reshape(G // b, KH * KW * b * Cg, b * Og)


def unblock_dw(dwb, w_shape, G, b):
    """The gradient of block_weights' result (G/b, KH*KW*b*Cg, b*Og) -> dw (O, Cg, KH, KW): its diagonal blocks."""
    O, Cg, KH, KW = w_shape
    d7 = dwb.reshape(G // b, KH, KW, b, Cg, b, O // G)
    diag = np.stack([d7[:, :, :, k, :, k, :] for k in range(b)], axis=1)   # (G/b, b, KH, KW, Cg, Og)
    return np.ascontiguousarray(diag.transpose(0, 1, 5, 4, 2, 3)).reshape(O, Cg, KH, KW)


def _chunk_images(N, per_image_bytes) -> int:
    """Images per chunk: about tuning.CPU_CHUNK_BYTES of columns (as Conv2dCPU's chunks)."""
    return max(1, min(N, tuning.CPU_CHUNK_BYTES // max(per_image_bytes, 1)))


def _columns(x, kernel, stride, padding, dilation, out_size, nblocks):
    """Yield (n0, n1, cols) over batch chunks; cols (G/b, n*OH*OW, KH*KW*b*Cg) in a reused buffer."""
    N, C, H, W = x.shape
    (KH, KW), (PH, PW), (OH, OW) = kernel, padding, out_size
    Cb = C // nblocks
    B = _chunk_images(N, OH * OW * KH * KW * C * x.dtype.itemsize)
    xpad = np.zeros((B, H + 2 * PH, W + 2 * PW, C), dtype=x.dtype)         # the border stays zero
    cols = np.empty((nblocks, B, OH, OW, KH, KW, Cb), dtype=x.dtype)
    sN, sH, sW, sC = xpad.strides
    for n0 in range(0, N, B):
        n1 = min(N, n0 + B)
        n = n1 - n0
        xpad[:n, PH:PH + H, PW:PW + W, :] = x[n0:n1].transpose(0, 2, 3, 1)  # NCHW or NHWC memory -> NHWC
        # Every block's window of every output pixel, copied once: (G/b, n, OH, OW, KH, KW, b*Cg).
        windows = as_strided(xpad, (nblocks, n, OH, OW, KH, KW, Cb),
                             (Cb * sC, sN, sH * stride[0], sW * stride[1], sH * dilation[0], sW * dilation[1], sC),
                             writeable=False)
        cols[:, :n] = windows
        yield n0, n1, cols[:, :n].reshape(nblocks, n * OH * OW, KH * KW * Cb)


def _block_rows(rows, nblocks):
    """Rows (R, O') -> (G/b, R, b*Og) view: each block's column block (BLAS reads it with the row stride)."""
    (R, width), (sR, sO) = rows.shape, rows.strides
    # as_strided, not reshape: a column slice of the output must stay a view that matmul writes into
    return as_strided(rows, (nblocks, R, width // nblocks), (width // nblocks * sO, sR, sO))


def _conv(x, wb, kernel, stride, padding, dilation, out):
    """out (n*OH*OW, O) = x (n, C, H, W) conv the block weights wb (G/b, KH*KW*b*Cg, b*Og), NHWC rows, no bias."""
    OH, OW = output_size(x.shape, (1, 1) + tuple(kernel), stride, padding, dilation)
    for n0, n1, cols in _columns(x, kernel, stride, padding, dilation, (OH, OW), wb.shape[0]):
        np.matmul(cols, wb, out=_block_rows(out[n0 * OH * OW:n1 * OH * OW], wb.shape[0]))


def _g_rows(g, n0, n1, nblocks):
    """g (N, O, OH, OW) images n0..n1 -> (G/b, n*OH*OW, b*Og): a view of NHWC memory, else a chunk's copy."""
    rows = g[n0:n1].transpose(0, 2, 3, 1).reshape(-1, g.shape[1])           # (n*OH*OW, O')
    return _block_rows(rows, nblocks)


def _dw(x, g, kernel, stride, padding, dilation, nblocks):
    """The block weights' gradient (G/b, KH*KW*b*Cg, b*Og) from images x (n, C, H, W) and g (n, O, OH, OW)."""
    acc = None
    for n0, n1, cols in _columns(x, kernel, stride, padding, dilation, g.shape[2:], nblocks):
        part = np.matmul(cols.transpose(0, 2, 1), _g_rows(g, n0, n1, nblocks))  # (G/b, K, b*Og)
        acc = part if acc is None else np.add(acc, part, out=acc)
    return acc


def _dx_scatter(g, wb, kernel, stride, dilation, dxpad):
    """dxpad (n, Hp, Wp, C) = the columns' gradient g @ wb^T scattered back, one GEMM and one add per offset."""
    N, _, OH, OW = g.shape
    (KH, KW), (SH, SW), (DH, DW) = kernel, stride, dilation
    nblocks, C = wb.shape[0], dxpad.shape[3]
    # (KH*KW, G/b, b*Og, b*Cg): offset (i, j)'s block of each block's weights, transposed
    taps = np.ascontiguousarray(wb.reshape(nblocks, KH * KW, C // nblocks, -1).transpose(1, 0, 3, 2))
    B = _chunk_images(N, OH * OW * KH * KW * C * g.dtype.itemsize)
    buf = np.empty((B * OH * OW, C), dtype=g.dtype)
    dxpad.fill(0)
    for n0 in range(0, N, B):
        n1 = min(N, n0 + B)
        n = n1 - n0
        grows, d = _g_rows(g, n0, n1, nblocks), buf[:n * OH * OW]           # (G/b, n*OH*OW, b*Og), (rows, C)
        for i in range(KH):
            for j in range(KW):
                # NOTE: one (rows, C) GEMM result per offset, added in C-value runs, beat one
                # (rows, KH*KW*b*Cg) column gradient added in b*Cg-value runs: forward + dx of
                # 152 channels in 19 groups at 32x32, stride 2, batch 64: 345 ms against 464
                # (368 in 46 groups at 16x16: 112 against 152; 2 groups of 64: 157 against 165).
                np.matmul(grows, taps[i * KW + j], out=_block_rows(d, nblocks))
                dxpad[n0:n1, i * DH:i * DH + SH * (OH - 1) + 1:SH, j * DW:j * DW + SW * (OW - 1) + 1:SW] += \
                    d.reshape(n, OH, OW, C)                                  # one offset meets each pixel once


def _split(fn, N):
    """fn(n0, n1) over parts of the batch, one per thread (BLAS held at one thread, as Conv2dCPU's)."""
    return parallel.split(fn, N, item_size=tuning.MIN_PART_ELEMENTS, blas=True)


class GroupedConv2dCPU(Conv2d):
    """conv2d with 1 < groups < in channels on NumPy arrays: a one-copy column stack and batched GEMMs over blocks of groups."""

    @classmethod
    def supports(cls, x, w, b=None, groups=1, **params):
        # float16 stays on Conv2dCPU (float32 GEMMs); an empty batch goes to the reference.
        arrays = [a for a in (x, w, b) if a is not None]
        return (all(isinstance(a, np.ndarray) for a in arrays) and x.shape[0] > 0 and 1 < groups < x.shape[1]
                and all(a.dtype == x.dtype for a in arrays) and x.dtype in (np.float32, np.float64))

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, O, G = x.shape[0], w.shape[0], groups
        OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
        self.geom = ConvGeometry(x.shape, w.shape, stride, padding, dilation, G)
        Cg, Og, kernel, P = w.shape[1], O // G, w.shape[2:], OH * OW
        wbs = [(g0, g1, block_weights(w[g0 * Og:g1 * Og], g1 - g0, bs)) for g0, g1, bs in pieces(G, Cg)]
        out = np.empty((N * OH * OW, O), dtype=x.dtype)

        def part(n0, n1):
            for g0, g1, wb in wbs:  # wb (G'/b, KH*KW*b*Cg, b*Og): the piece's groups g0..g1-1
                _conv(x[n0:n1, g0 * Cg:g1 * Cg], wb, kernel, stride, padding, dilation,
                      out[n0 * P:n1 * P, g0 * Og:g1 * Og])

        _split(part, N)
        if b is not None:
            out += b
        self.x = x if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        return out.reshape(N, OH, OW, O).transpose(0, 3, 1, 2)             # (N, O, OH, OW) view of NHWC memory

    def backward(self, g):
        (N, C, H, W), w_shape, stride, padding, dilation, G = self.geom
        O, Cg, KH, KW = w_shape
        (PH, PW), (DH, DW), kernel, Og = padding, dilation, (KH, KW), O // G
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        need_db = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        db = g.sum(axis=(0, 2, 3)) if need_db else None
        dx = dx_part = None
        if need_dx and stride == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1):
            # NOTE: for stride 1, dx is a grouped conv of g with the flipped, in/out-swapped kernel and
            # padding d*(K-1) - p, as in Conv2dCPU: no (rows, KH*KW*Cg) column gradient, no scatter.
            wflip = self.w.reshape(G, Og, Cg, KH, KW).transpose(0, 2, 1, 3, 4).reshape(C, Og, KH, KW)
            wflip = np.ascontiguousarray(wflip[:, :, ::-1, ::-1])             # (C, Og, KH, KW): groups of Cg rows
            wbs = [(g0, g1, block_weights(wflip[g0 * Cg:g1 * Cg], g1 - g0, bs)) for g0, g1, bs in pieces(G, Og)]
            pflip = (DH * (KH - 1) - PH, DW * (KW - 1) - PW)
            dxmat = np.empty((N * H * W, C), dtype=g.dtype)
            dx = dxmat.reshape(N, H, W, C).transpose(0, 3, 1, 2)             # (N, C, H, W) view of NHWC memory

            def dx_part(n0, n1):
                for g0, g1, wb in wbs:
                    _conv(g[n0:n1, g0 * Og:g1 * Og], wb, kernel, (1, 1), pflip, dilation,
                          dxmat[n0 * H * W:n1 * H * W, g0 * Cg:g1 * Cg])
        elif need_dx:
            wbs = [(g0, g1, block_weights(self.w[g0 * Og:g1 * Og], g1 - g0, bs)) for g0, g1, bs in pieces(G, Cg)]
            dxpad = np.empty((N, H + 2 * PH, W + 2 * PW, C), dtype=g.dtype)
            dx = dxpad[:, PH:PH + H, PW:PW + W, :].transpose(0, 3, 1, 2)     # (N, C, H, W) view

            def dx_part(n0, n1):
                for g0, g1, wb in wbs:
                    _dx_scatter(g[n0:n1, g0 * Og:g1 * Og], wb, kernel, stride, dilation,
                                dxpad[n0:n1, :, :, g0 * Cg:g1 * Cg])

        plan = pieces(G, Cg)

        def part(n0, n1):  # this part's block-weight gradient per piece (summed below) and its images' dx
            dwbs = [_dw(self.x[n0:n1, g0 * Cg:g1 * Cg], g[n0:n1, g0 * Og:g1 * Og], kernel, stride, padding,
                        dilation, (g1 - g0) // bs) for g0, g1, bs in plan] if need_dw else None
            if dx_part is not None:
                dx_part(n0, n1)
            return dwbs

        partial = _split(part, N)
        dw = None
        if need_dw:
            dw = np.empty(w_shape, dtype=g.dtype)
            for k, (g0, g1, bs) in enumerate(plan):
                dwb = partial[0][k]
                for p in partial[1:]:
                    dwb += p[k]
                dw[g0 * Og:g1 * Og] = unblock_dw(dwb, (Og * (g1 - g0), Cg, KH, KW), g1 - g0, bs)
        return dx, dw, db
