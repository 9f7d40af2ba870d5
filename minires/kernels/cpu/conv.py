"""CPU fast path of conv2d: channels-last im2col + GEMM over cache-sized batch chunks, split over threads.

Why not the reference (functional/conv.py): it builds NCHW-ordered columns of the whole batch at once
and multiplies them image by image, a stack of small GEMMs. Here the columns are channels-last
(im2col.py: each output pixel's receptive field one contiguous row), so one GEMM per chunk has the
large N*OH*OW as rows; chunks stay cache-sized; and stride-1 dx needs no col2im.

Forward: out rows (N*OH*OW, O) = cols (N*OH*OW, KH*KW*C) @ Wmat (KH*KW*C, O), a few images at a
time. Backward: dw = cols^T @ g with the columns rebuilt chunk by chunk; dx is a conv of g with
the flipped kernel when the stride is 1, else g @ Wmat^T scattered back by col2im. Narrow
stride-1 convs (16 channels) use row-split columns instead: only the KW axis is copied and the
KH kernel rows become row-shifted GEMMs (see tuning.ROW_SPLIT_MAX_K). Unpadded 1x1 convs build no
columns at all: their GEMMs run on the NHWC rows of x and g themselves ("pointwise" below).

The functions below run in one thread over one part of the batch; Conv2dCPU splits each call's
batch over the threads once (parallel.split) and sums the parts' dw.
"""
from __future__ import annotations

import numpy as np

from ... import parallel, tuning
from ...functional.conv import Conv2d, ConvGeometry, output_size
from ..shared import weight_matrix
from .gemm import matmul
from .im2col import col2im_nhwc, im2col_nhwc


def _chunk_images(x_shape, w_shape, out_size, itemsize) -> int:
    """Images per chunk: about tuning.CPU_CHUNK_BYTES of columns, and at least
    tuning.ROWS_PER_OUT_CHANNEL * O column rows (see their notes in minires.tuning)."""
    N, C = x_shape[:2]
    rows = out_size[0] * out_size[1]
    per_image = rows * w_shape[2] * w_shape[3] * C * itemsize
    by_bytes = tuning.CPU_CHUNK_BYTES // max(per_image, 1)
    by_rows = -(-tuning.ROWS_PER_OUT_CHANNEL * w_shape[0] // max(rows, 1))
    return max(1, min(N, max(by_bytes, by_rows)))


def _columns(x, w_shape, stride, padding, dilation, G):
    """Yield (n0, n1, cols) over batch chunks; cols (G, n*OH*OW, KH*KW*Cg) lives in a reused buffer."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w_shape
    (PH, PW), (OH, OW) = padding, output_size(x.shape, w_shape, stride, padding, dilation)
    B = _chunk_images(x.shape, w_shape, (OH, OW), x.dtype.itemsize)
    xpad = np.zeros((B, H + 2 * PH, W + 2 * PW, C), dtype=x.dtype)         # the border stays zero
    cols = np.empty((B, OH, OW, KH, KW, C), dtype=x.dtype)
    for n0 in range(0, N, B):
        n1 = min(N, n0 + B)
        n = n1 - n0
        xpad[:n, PH:PH + H, PW:PW + W, :] = x[n0:n1].transpose(0, 2, 3, 1)  # NCHW -> NHWC
        c = im2col_nhwc(xpad[:n], (KH, KW), stride, dilation, (OH, OW), out=cols[:n])  # (n, OH, OW, KH, KW, C)
        # A view for groups=1; for groups>1 a group's channels are not contiguous in a row.
        yield n0, n1, c.reshape(n * OH * OW, KH * KW, G, Cg).transpose(2, 0, 1, 3).reshape(G, n * OH * OW, -1)


# NOTE: for narrow inputs (KW*C values per kernel row, e.g. 48 for 3x3 over 16 channels) the
# im2col copy is bound by its many short runs, not by bytes. For stride 1 along H, "row-split"
# columns copy only the KW axis: P[n, h, ow] = xpad[n, h, ow*SW + (0..KW-1)*DW] over ALL padded
# rows h, a third of the copying; kernel row i then reads rows shifted by i*DH*OW of P, a
# contiguous slice, so the conv is KH GEMMs of depth KW*C. Where it pays is measured in
# tuning.ROW_SPLIT_MAX_K (forward, dx) and tuning.ROW_SPLIT_DW_MAX_K (dw).
def _row_split(x_shape, w_shape, stride, G, max_k) -> bool:
    """Whether to use row-split columns (see the note above) for this conv."""
    O, Cg, KH, KW = w_shape
    # The KH-1 extra accumulations cost O values per row against the KW*C copied values saved:
    # for the 3-channel stem (9 < 16) plain im2col measured ~20% faster.
    return G == 1 and stride[0] == 1 and KH > 1 and O <= KW * Cg <= max_k


def _row_columns(x, w_shape, stride, padding, dilation):
    """Yield (n0, n1, P) over batch chunks; P (n*Hp*OW, KW*C) row-split columns in a reused buffer."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w_shape
    (PH, PW), (_, OW) = padding, output_size(x.shape, w_shape, stride, padding, dilation)
    Hp, Wp = H + 2 * PH, W + 2 * PW
    B = _chunk_images(x.shape, (O, Cg, 1, KW), (Hp, OW), x.dtype.itemsize)  # Hp*OW*KW*C per image
    xpad = np.zeros((B, Hp, Wp, C), dtype=x.dtype)                          # the border stays zero
    cols = np.empty((B, Hp, OW, 1, KW, C), dtype=x.dtype)
    for n0 in range(0, N, B):
        n1 = min(N, n0 + B)
        n = n1 - n0
        xpad[:n, PH:PH + H, PW:PW + W, :] = x[n0:n1].transpose(0, 2, 3, 1)  # NCHW -> NHWC
        c = im2col_nhwc(xpad[:n], (1, KW), (1, stride[1]), (1, dilation[1]), (Hp, OW), out=cols[:n])
        yield n0, n1, c.reshape(n * Hp * OW, KW * C)                         # (n*Hp*OW, KW*C)


def _row_weights(w):
    """w (O, C, KH, KW) -> (KH, KW*C, O): kernel row i as a matrix ordered like a row of P."""
    O, C, KH, KW = w.shape
    return w.transpose(2, 3, 1, 0).reshape(KH, KW * C, O)


def _row_split_gemm(x, w, stride, padding, dilation, out):
    """_conv_gemm by row-split columns: out rows (n, oh, ow) = sum_i P[(n, oh + i*DH, ow)] @ W_i."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
    Hp, shift = H + 2 * padding[0], dilation[0] * OW                        # P rows per image, per kernel row
    wrows = _row_weights(w)                                                  # (KH, KW*C, O)
    out = out.reshape(N, OH, OW, O)
    acc = tmp = None
    for n0, n1, P in _row_columns(x, w.shape, stride, padding, dilation):
        if acc is None:
            acc, tmp = np.empty((P.shape[0], O), dtype=x.dtype), np.empty((P.shape[0], O), dtype=x.dtype)
        # Rows (n, h, ow) with h >= OH mix neighbouring images (or stale rows): they are dropped below.
        R = P.shape[0] - (KH - 1) * shift
        matmul(P[:R], wrows[0], out=acc[:R])
        for i in range(1, KH):
            matmul(P[i * shift:i * shift + R], wrows[i], out=tmp[:R])
            acc[:R] += tmp[:R]
        out[n0:n1] = acc[:P.shape[0]].reshape(n1 - n0, Hp, OW, O)[:, :OH]


def _row_split_dw(x, g, w_shape, stride, padding, dilation):
    """dw (O, C, KH, KW) = sum over rows of P[(n, oh + i*DH, ow)]^T g[(n, oh, ow)], per kernel row i."""
    N, C, H, W = x.shape
    O, _, KH, KW = w_shape
    OH, OW = g.shape[2:]
    Hp, shift = H + 2 * padding[0], dilation[0] * OW
    dw = np.zeros((KH, KW * C, O), dtype=g.dtype)
    gpad = None
    for n0, n1, P in _row_columns(x, w_shape, stride, padding, dilation):
        if gpad is None:  # rows h >= OH stay zero, so P rows that mix images contribute nothing
            gpad = np.zeros((P.shape[0] // (Hp * OW), Hp, OW, O), dtype=g.dtype)
        n = n1 - n0
        gpad[:n, :OH] = g[n0:n1].transpose(0, 2, 3, 1)                      # (n, OH, OW, O)
        gr = gpad[:n].reshape(n * Hp * OW, O)
        R = P.shape[0] - (KH - 1) * shift
        for i in range(KH):
            dw[i] += matmul(P[i * shift:i * shift + R].T, gr[:R])            # (KW*C, O)
    return np.ascontiguousarray(dw.reshape(KH, KW, C, O).transpose(3, 2, 0, 1))  # (O, C, KH, KW)


def _conv_gemm(x, w, stride, padding, dilation, G, out):
    """out (N*OH*OW, O) = rows of x (N, C, H, W) conv w (O, C/G, KH, KW), no bias, in NHWC order."""
    if _row_split(x.shape, w.shape, stride, G, tuning.ROW_SPLIT_MAX_K):
        return _row_split_gemm(x, w, stride, padding, dilation, out)
    OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
    wmat = weight_matrix(w, G)                                               # (G, KH*KW*Cg, Og)
    for n0, n1, cols in _columns(x, w.shape, stride, padding, dilation, G):
        rows = slice(n0 * OH * OW, n1 * OH * OW)
        if G == 1:
            matmul(cols[0], wmat[0], out=out[rows])                          # (n*OH*OW, O)
        else:
            out[rows] = matmul(cols, wmat).transpose(1, 0, 2).reshape(-1, w.shape[0])  # (G, n*OH*OW, Og) -> rows


# NOTE: an unpadded 1x1 conv (groups 1) is a GEMM on the input's own NHWC rows: out rows = x rows @ W^T,
# dw = g rows^T @ x rows, dx rows = g rows @ W. For channels-last memory at stride 1 the rows are a
# view, so forward, dx and dw copy nothing, where the columns path made a padded NHWC copy and then
# an im2col copy of it (and the same for g in dx). Measured in results (bench_conv_bound --set pointwise).
def _pointwise(w_shape, padding, G) -> bool:
    """Whether this conv takes the column-free 1x1 path (see the note above)."""
    return G == 1 and tuple(w_shape[2:]) == (1, 1) and tuple(padding) == (0, 0)


def _pixel_rows(x, stride):
    """x (n, C, H, W) -> (n*OH*OW, C): the pixels a 1x1 conv of this stride reads; a view for NHWC memory, stride 1."""
    return x[:, :, ::stride[0], ::stride[1]].transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _pointwise_backward(x, w, g, stride, dxrows):
    """dw (O, C) of this part's images; dx rows (n*OH*OW, C) = g rows @ W written into dxrows (None: no dx)."""
    gr = _pixel_rows(g, (1, 1))                                              # (n*OH*OW, O)
    if dxrows is not None:
        matmul(gr, w.reshape(w.shape[0], -1), out=dxrows)
    return None if x is None else matmul(gr.T, _pixel_rows(x, stride))     # (O, C)


def _g_rows(g, G):
    """g (n, O, OH, OW) -> (G, n*OH*OW, Og); a per-chunk NHWC copy stays in cache (free if g is NHWC)."""
    return g.transpose(0, 2, 3, 1).reshape(-1, G, g.shape[1] // G).transpose(1, 0, 2)


def _dw(x, g, w_shape, stride, padding, dilation, G):
    """dw (O, Cg, KH, KW) of the images in x (n, C, H, W) with their gradient g (n, O, OH, OW)."""
    # NOTE: row-split dw multiplies rows of P that straddle two images by zero rows of g; an inf or
    # NaN in x would turn those into NaN (0 * inf), so non-finite input takes the plain columns.
    if _row_split(x.shape, w_shape, stride, G, tuning.ROW_SPLIT_DW_MAX_K) and np.isfinite(x.max()) \
            and np.isfinite(x.min()):
        return _row_split_dw(x, g, w_shape, stride, padding, dilation)
    O, Cg, KH, KW = w_shape
    acc = np.zeros((G, KH * KW * Cg, O // G), dtype=g.dtype)
    for n0, n1, cols in _columns(x, w_shape, stride, padding, dilation, G):
        acc += matmul(cols.transpose(0, 2, 1), _g_rows(g[n0:n1], G))       # (G, KH*KW*Cg, Og)
    acc = acc.reshape(G, KH, KW, Cg, O // G).transpose(0, 4, 3, 1, 2).reshape(O, Cg, KH, KW)
    return np.ascontiguousarray(acc)


def _dx_col2im(g, wmat_t, w_shape, stride, dilation, dxpad):
    """dxpad (n, Hp, Wp, C) = col2im of g (n, O, OH, OW) @ Wmat^T, a chunk of images at a time."""
    (OH, OW), C = g.shape[2:], dxpad.shape[3]
    O, Cg, KH, KW = w_shape
    G = C // Cg
    B = _chunk_images((g.shape[0], C), w_shape, (OH, OW), g.dtype.itemsize)
    for n0 in range(0, g.shape[0], B):
        n1 = min(g.shape[0], n0 + B)
        n = n1 - n0
        dcols = matmul(_g_rows(g[n0:n1], G), wmat_t).reshape(G, n, OH, OW, KH, KW, Cg)
        dcols = dcols.transpose(1, 2, 3, 4, 5, 0, 6).reshape(n, OH, OW, KH, KW, C)  # channel g*Cg + c
        col2im_nhwc(dcols, (n,) + dxpad.shape[1:], stride, dilation, out=dxpad[n0:n1])


# NOTE: for stride 1 (groups 1, columns not row-split) dx and dw share one set of columns, those of
# g for the flipped-kernel conv: cols[(n, h, w), (i', j', o)] = gpad[n, h + d*i', w + d*j', o] is
# g[n, o, oh, ow] for the output pixel whose kernel tap (KH-1-i', KW-1-j') reads x[n, :, h, w], so
# dw[o, c, KH-1-i', KW-1-j'] = sum over x's pixels of cols^T @ x rows. The x columns dw built before
# are not copied at all (x rows are a view of channels-last x). In this sum the zero padding of g
# multiplies x, where the columns of x put it against g: with an inf or NaN in either the zeros
# would give NaN in other entries, so non-finite parts take the separate columns. Measured on one
# Zen 3 thread, fwd+bwd: 32->32 @16 7%, 64->64 @8 4%, 256->256 @7 and @3 5-9% faster; where O > C
# (24->64, 64->256) the g columns are the wider ones and it ran 3-5% slower, so only O <= C takes it.
def _dx_and_dw(g, wflip, pflip, dilation, x, dxrows):
    """dx rows (n*H*W, C) = cols of g @ Wflip, written into dxrows, and dw (O, C, KH, KW) from the same cols."""
    C, O, KH, KW = wflip.shape
    H, W = x.shape[2:]
    wmat = weight_matrix(wflip, 1)[0]                                        # (KH*KW*O, C)
    xr = x.transpose(0, 2, 3, 1)                                             # (n, H, W, C)
    acc = np.zeros((KH * KW * O, C), dtype=g.dtype)
    for n0, n1, cols in _columns(g, wflip.shape, (1, 1), pflip, dilation, 1):
        c = cols[0]                                                          # (n*H*W, KH*KW*O)
        matmul(c, wmat, out=dxrows[n0 * H * W:n1 * H * W])
        acc += matmul(c.T, xr[n0:n1].reshape(-1, C))                         # (KH*KW*O, C)
    return np.ascontiguousarray(acc.reshape(KH, KW, O, C)[::-1, ::-1].transpose(2, 3, 0, 1))


def _finite(a) -> bool:
    """Whether a holds no inf or NaN: one sum, in float32 at least (a float16 sum of finite values may overflow)."""
    with np.errstate(over="ignore", invalid="ignore"):  # inf + -inf is an answer here, not a warning
        return bool(np.isfinite(a.sum(dtype=np.result_type(a.dtype, np.float32))))


def _sum_parts(partial):
    """The sum of the parts' dw, added into the first."""
    dw = partial[0]
    for p in partial[1:]:
        dw += p
    return dw


def _split(fn, N):
    """fn(n0, n1) over parts of the batch, one per thread; NOTE: one image's GEMMs always outweigh a
    thread hand-off, so every image may be a part (item_size = the minimum part)."""
    return parallel.split(fn, N, item_size=tuning.MIN_PART_ELEMENTS, blas=True)


class Conv2dCPU(Conv2d):
    """conv2d on NumPy arrays: chunked channels-last im2col or row-split columns, the batch split over threads."""

    @classmethod
    def supports(cls, x, w, b=None, **params):
        # An empty batch goes to the reference: no parts, no chunks.
        return all(isinstance(a, np.ndarray) for a in (x, w, b) if a is not None) and x.shape[0] > 0

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, O = x.shape[0], w.shape[0]
        OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
        self.geom = ConvGeometry(x.shape, w.shape, stride, padding, dilation, groups)
        out = np.empty((N * OH * OW, O), dtype=x.dtype)
        P = OH * OW
        if _pointwise(w.shape, padding, groups):
            wmat = w.reshape(O, -1).T                                        # (C, O)
            _split(lambda n0, n1: matmul(_pixel_rows(x[n0:n1], stride), wmat, out=out[n0 * P:n1 * P]), N)
        else:
            _split(lambda n0, n1: _conv_gemm(x[n0:n1], w, stride, padding, dilation, groups, out[n0 * P:n1 * P]),
                   N)
        if b is not None:
            out += b
        # Columns are rebuilt in backward (from cache-sized chunks) instead of being kept.
        self.x = x if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        # NOTE: the result is an (N, O, OH, OW) view of channels-last memory, as PyTorch's
        # channels_last tensors are: elementwise ops keep the layout, and the next conv's NHWC
        # transpose then reads contiguously instead of paying a transpose copy here.
        return out.reshape(N, OH, OW, O).transpose(0, 3, 1, 2)             # (N, O, OH, OW)

    def backward(self, g):
        (N, C, H, W), w_shape, stride, padding, dilation, G = self.geom
        O, Cg, KH, KW = w_shape
        (PH, PW), (DH, DW) = padding, dilation
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        need_db = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        db = g.sum(axis=(0, 2, 3)) if need_db else None
        dx = dx_part = None
        if _pointwise(w_shape, padding, G):
            return self._backward_pointwise(g, need_dx, need_dw) + (db,)
        if need_dx and stride == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1):
            # NOTE: for stride 1, dx is itself a conv of g with the flipped, in/out-swapped kernel
            # and padding d*(K-1) - p: cheaper than a GEMM writing KH*KW times dx's size + col2im.
            wflip = self.w.reshape(G, O // G, Cg, KH, KW).transpose(0, 2, 1, 3, 4).reshape(C, O // G, KH, KW)
            wflip = wflip[:, :, ::-1, ::-1]                                  # (C, O/G, KH, KW)
            pflip = (DH * (KH - 1) - PH, DW * (KW - 1) - PW)
            dxmat = np.empty((N * H * W, C), dtype=g.dtype)
            dx = dxmat.reshape(N, H, W, C).transpose(0, 3, 1, 2)             # (N, C, H, W) view

            def dx_part(n0, n1):
                _conv_gemm(g[n0:n1], wflip, (1, 1), pflip, dilation, G, dxmat[n0 * H * W:n1 * H * W])

            shared = need_dw and G == 1 and O <= C
            if shared and not _row_split(g.shape, wflip.shape, (1, 1), G, tuning.ROW_SPLIT_MAX_K):
                def part(n0, n1):  # dx and dw of this part from the one set of columns of g
                    x, gp = self.x[n0:n1], g[n0:n1]
                    if _finite(x) and _finite(gp):  # see _dx_and_dw's note
                        return _dx_and_dw(gp, wflip, pflip, dilation, x, dxmat[n0 * H * W:n1 * H * W])
                    dx_part(n0, n1)
                    return _dw(x, gp, w_shape, stride, padding, dilation, G)
                return dx, _sum_parts(_split(part, N)), db
        elif need_dx:
            wmat_t = weight_matrix(self.w, G).transpose(0, 2, 1)             # (G, Og, KH*KW*Cg)
            dxpad = np.empty((N, H + 2 * PH, W + 2 * PW, C), dtype=g.dtype)
            dx = dxpad[:, PH:PH + H, PW:PW + W, :].transpose(0, 3, 1, 2)     # (N, C, H, W) view

            def dx_part(n0, n1):
                _dx_col2im(g[n0:n1], wmat_t, w_shape, stride, dilation, dxpad[n0:n1])

        def part(n0, n1):  # this part's dw (summed below) and its images' dx
            dw = _dw(self.x[n0:n1], g[n0:n1], w_shape, stride, padding, dilation, G) if need_dw else None
            if dx_part is not None:
                dx_part(n0, n1)
            return dw

        partial = _split(part, N)
        return dx, _sum_parts(partial) if need_dw else None, db

    def _backward_pointwise(self, g, need_dx, need_dw):
        """(dx, dw) of an unpadded 1x1 conv: column-free GEMMs on the NHWC rows (see _pointwise)."""
        (N, C, H, W), w_shape, stride = self.geom[:3]
        OH, OW = g.shape[2:]
        dxrows = np.empty((N * OH * OW, C), dtype=g.dtype) if need_dx else None

        def part(n0, n1):
            rows = None if dxrows is None else dxrows[n0 * OH * OW:n1 * OH * OW]
            return _pointwise_backward(self.x[n0:n1] if need_dw else None, self.w if need_dx else None,
                                       g[n0:n1], stride, rows)
        partial = _split(part, N)
        dw = _sum_parts(partial).reshape(w_shape) if need_dw else None
        dx = None
        if need_dx:
            dx = dxrows.reshape(N, OH, OW, C)                                  # (N, OH, OW, C)
            if (OH, OW) != (H, W):  # strided: the pixels the conv skipped get no gradient
                full = np.zeros((N, H, W, C), dtype=g.dtype)
                full[:, ::stride[0], ::stride[1]] = dx
                dx = full
            dx = dx.transpose(0, 3, 1, 2)                                      # (N, C, H, W) view
        return dx, dw
