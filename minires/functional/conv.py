"""2-D convolution (PyTorch semantics, NCHW) by channels-last im2col + GEMM over cache-sized batch chunks.

Forward: out rows (N*OH*OW, O) = cols (N*OH*OW, KH*KW*C) @ Wmat (KH*KW*C, O), a few images at a
time. Backward: dw = cols^T @ g with the columns rebuilt chunk by chunk; dx is a conv of g with
the flipped kernel when the stride is 1, else g @ Wmat^T scattered back by col2im. Narrow
stride-1 convs (16 channels) use row-split columns instead: only the KW axis is copied and the
KH kernel rows become row-shifted GEMMs (see ROW_SPLIT_MAX_K).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _validate, amp
from ..tensor import Function
from ..backend import get_array_module
from ..parallel import MIN_PART_ELEMENTS, array_parts
from .. import cuda
from ..cuda import ops as cuda_ops
from ..kernels.cpu.gemm import matmul
from ..kernels.cpu.im2col import col2im_nhwc, conv_output_size, im2col_nhwc


# Bytes of im2col columns built at once on the CPU. NOTE: the GEMMs here are bound by memory
# bandwidth, not FLOPs: columns for a few images stay in cache between the im2col copy and the
# GEMM reading them, where whole-batch columns (hundreds of MB) make a round trip through RAM
# (and page-fault on every fresh allocation). Measured ~1.5x faster for ResNet-sized layers.
# 2 MB = the two cores' L2 (1 MB each): ~15% faster than 4 MB over ResNet-20's convs.
CPU_CHUNK_BYTES = 2 * 2**20
# NOTE: each chunk's GEMM also packs the whole weight matrix (KH*KW*C, O) and, for dw, writes and
# adds a (KH*KW*C, O) partial product: a cost per chunk, not per row. For wide layers (256->256 at
# 8x8, 2 MB = 3 images = 192 rows) that outweighs the columns, so chunks hold at least this many
# rows per output channel: 256->256 at 8x8 measured 13% faster forward, 21% backward; 128->128 at
# 16x16 unchanged; 8 rows per channel was slower than 4 there.
ROWS_PER_OUT_CHANNEL = 4


def _geometry(x_shape, w_shape, stride, padding, dilation):
    N, C, H, W = x_shape
    O, Cg, KH, KW = w_shape
    OH = conv_output_size(H, KH, stride[0], padding[0], dilation[0])
    OW = conv_output_size(W, KW, stride[1], padding[1], dilation[1])
    return OH, OW


def _chunk_images(xp, x_shape, w_shape, out_size, itemsize) -> int:
    """Images per chunk: the whole batch on a GPU; on the CPU about CPU_CHUNK_BYTES of columns,
    and at least ROWS_PER_OUT_CHANNEL * O column rows."""
    N, C = x_shape[:2]
    if xp is not np:
        return N
    rows = out_size[0] * out_size[1]
    per_image = rows * w_shape[2] * w_shape[3] * C * itemsize
    by_bytes = CPU_CHUNK_BYTES // max(per_image, 1)
    by_rows = -(-ROWS_PER_OUT_CHANNEL * w_shape[0] // max(rows, 1))
    return max(1, min(N, max(by_bytes, by_rows)))


def _columns(x, w_shape, stride, padding, dilation, G):
    """Yield (n0, n1, cols) over batch chunks; cols (G, n*OH*OW, KH*KW*Cg) lives in a reused buffer."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w_shape
    (PH, PW), (OH, OW) = padding, _geometry(x.shape, w_shape, stride, padding, dilation)
    B = _chunk_images(xp, x.shape, w_shape, (OH, OW), x.dtype.itemsize)
    xpad = xp.zeros((B, H + 2 * PH, W + 2 * PW, C), dtype=x.dtype)         # the border stays zero
    cols = xp.empty((B, OH, OW, KH, KW, C), dtype=x.dtype)
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
# contiguous slice, so the conv is KH GEMMs of depth KW*C. Measured ~20% faster for 16-channel
# 3x3 layers and slower from 32 channels on (the GEMMs get too shallow relative to the copy saved).
# For dw the GEMMs reduce over the long pixel axis whatever the column width, so row-split
# pays up to wider rows: 32-channel 3x3 dw measured ~7% faster, 64-channel ~10% slower.
ROW_SPLIT_MAX_K = 48
ROW_SPLIT_DW_MAX_K = 96


def _row_split(x_shape, w_shape, stride, G, max_k=None) -> bool:
    """Whether to use row-split columns (see the note above) for this conv."""
    O, Cg, KH, KW = w_shape
    # The KH-1 extra accumulations cost O values per row against the KW*C copied values saved:
    # for the 3-channel stem (9 < 16) plain im2col measured ~20% faster.
    max_k = ROW_SPLIT_MAX_K if max_k is None else max_k
    return G == 1 and stride[0] == 1 and KH > 1 and O <= KW * Cg <= max_k


def _row_columns(x, w_shape, stride, padding, dilation):
    """Yield (n0, n1, P) over batch chunks; P (n*Hp*OW, KW*C) row-split columns in a reused buffer."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w_shape
    (PH, PW), (_, OW) = padding, _geometry(x.shape, w_shape, stride, padding, dilation)
    Hp, Wp = H + 2 * PH, W + 2 * PW
    B = _chunk_images(xp, x.shape, (O, Cg, 1, KW), (Hp, OW), x.dtype.itemsize)  # Hp*OW*KW*C per image
    xpad = xp.zeros((B, Hp, Wp, C), dtype=x.dtype)                          # the border stays zero
    cols = xp.empty((B, Hp, OW, 1, KW, C), dtype=x.dtype)
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
    xp = get_array_module(x)
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    OH, OW = _geometry(x.shape, w.shape, stride, padding, dilation)
    Hp, shift = H + 2 * padding[0], dilation[0] * OW                        # P rows per image, per kernel row
    wrows = _row_weights(w)                                                  # (KH, KW*C, O)
    out = out.reshape(N, OH, OW, O)
    acc = tmp = None
    for n0, n1, P in _row_columns(x, w.shape, stride, padding, dilation):
        if acc is None:
            acc, tmp = xp.empty((P.shape[0], O), dtype=x.dtype), xp.empty((P.shape[0], O), dtype=x.dtype)
        # Rows (n, h, ow) with h >= OH mix neighbouring images (or stale rows): they are dropped below.
        R = P.shape[0] - (KH - 1) * shift
        matmul(P[:R], wrows[0], out=acc[:R])
        for i in range(1, KH):
            matmul(P[i * shift:i * shift + R], wrows[i], out=tmp[:R])
            acc[:R] += tmp[:R]
        out[n0:n1] = acc[:P.shape[0]].reshape(n1 - n0, Hp, OW, O)[:, :OH]


def _row_split_dw(x, g, w_shape, stride, padding, dilation):
    """dw (O, C, KH, KW) = sum over rows of P[(n, oh + i*DH, ow)]^T g[(n, oh, ow)], per kernel row i."""
    xp = get_array_module(g)
    N, C, H, W = x.shape
    O, _, KH, KW = w_shape
    OH, OW = g.shape[2:]
    Hp, shift = H + 2 * padding[0], dilation[0] * OW
    dw = xp.zeros((KH, KW * C, O), dtype=g.dtype)
    gpad = None
    for n0, n1, P in _row_columns(x, w_shape, stride, padding, dilation):
        if gpad is None:  # rows h >= OH stay zero, so P rows that mix images contribute nothing
            gpad = xp.zeros((P.shape[0] // (Hp * OW), Hp, OW, O), dtype=g.dtype)
        n = n1 - n0
        gpad[:n, :OH] = g[n0:n1].transpose(0, 2, 3, 1)                      # (n, OH, OW, O)
        gr = gpad[:n].reshape(n * Hp * OW, O)
        R = P.shape[0] - (KH - 1) * shift
        for i in range(KH):
            dw[i] += matmul(P[i * shift:i * shift + R].T, gr[:R])            # (KW*C, O)
    return xp.ascontiguousarray(dw.reshape(KH, KW, C, O).transpose(3, 2, 0, 1))  # (O, C, KH, KW)


def _weight_matrix(w, G):
    """w (O, Cg, KH, KW) -> (G, KH*KW*Cg, O/G), rows ordered like a row of columns."""
    O, Cg, KH, KW = w.shape
    return w.reshape(G, O // G, Cg, KH, KW).transpose(0, 3, 4, 2, 1).reshape(G, KH * KW * Cg, O // G)


def _conv_gemm_into(x, w, stride, padding, dilation, G, out):
    """out (N*OH*OW, O) = rows of x (N, C, H, W) conv w (O, C/G, KH, KW), in one thread."""
    xp = get_array_module(x)
    if _row_split(x.shape, w.shape, stride, G) and xp is np:
        return _row_split_gemm(x, w, stride, padding, dilation, out)
    OH, OW = _geometry(x.shape, w.shape, stride, padding, dilation)
    wmat = _weight_matrix(w, G)                                              # (G, KH*KW*Cg, Og)
    if G == 1 and cuda.enabled(xp, x.dtype):  # whole-batch columns gathered by a kernel straight from x (any layout)
        cols = cuda_ops.im2col(cuda.launcher(), xp, x, w.shape[2:], stride, padding, dilation, (OH, OW))
        xp.matmul(cols, wmat[0], out=out)                                    # cuBLAS
        return
    for n0, n1, cols in _columns(x, w.shape, stride, padding, dilation, G):
        rows = slice(n0 * OH * OW, n1 * OH * OW)
        if G == 1:
            matmul(cols[0], wmat[0], out=out[rows])                          # (n*OH*OW, O)
        else:
            out[rows] = matmul(cols, wmat).transpose(1, 0, 2).reshape(-1, w.shape[0])  # (G, n*OH*OW, Og) -> rows


def _batch_parts(xp, N, fn):
    """fn(n0, n1) over parts of the batch, one per CPU thread (GEMMs included); one part on a GPU."""
    return array_parts(xp, fn, N, row_size=MIN_PART_ELEMENTS, blas=True)


def _conv_gemm(x, w, stride, padding, dilation, G):
    """x (N, C, H, W) conv w (O, C/G, KH, KW), no bias -> (N*OH*OW, O) rows in NHWC order."""
    xp = get_array_module(x)
    N = x.shape[0]
    OH, OW = _geometry(x.shape, w.shape, stride, padding, dilation)
    out = xp.empty((N * OH * OW, w.shape[0]), dtype=x.dtype)
    P = OH * OW
    _batch_parts(xp, N, lambda n0, n1: _conv_gemm_into(
        x[n0:n1], w, stride, padding, dilation, G, out[n0 * P:n1 * P]))
    return out


class Conv2d(Function):
    """out[n, o] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] * xpad[n, c, s*h + d*i, s*w + d*j]."""

    name = "conv2d"

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, C, H, W = x.shape
        O = w.shape[0]
        OH, OW = _geometry(x.shape, w.shape, stride, padding, dilation)
        self.geom = (x.shape, w.shape, (OH, OW), stride, padding, dilation, groups)
        if N == 0:  # an empty batch: an empty output, and no kernel launch with an empty grid
            return get_array_module(x).empty((0, O, OH, OW), dtype=x.dtype)
        out = _conv_gemm(x, w, stride, padding, dilation, groups)           # (N*OH*OW, O)
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
        (N, C, H, W), (O, Cg, KH, KW), (OH, OW), stride, padding, dilation, G = self.geom
        (PH, PW), (DH, DW) = padding, dilation
        Og, K = O // G, KH * KW * Cg
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        need_db = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        xp = get_array_module(g)
        dx = dw = db = None
        if N == 0:  # sums over no samples
            return ((xp.zeros((N, C, H, W), dtype=g.dtype) if need_dx else None),
                    (xp.zeros((O, Cg, KH, KW), dtype=g.dtype) if need_dw else None),
                    (xp.zeros(O, dtype=g.dtype) if need_db else None))
        if need_db:
            db = g.sum(axis=(0, 2, 3))

        def g_rows(n0, n1):  # (G, n*OH*OW, Og); a per-chunk NHWC copy stays in cache (free if g is NHWC)
            return g[n0:n1].transpose(0, 2, 3, 1).reshape(-1, G, Og).transpose(1, 0, 2)

        if need_dw:
            x = self.x
            if _row_split(x.shape, (O, Cg, KH, KW), stride, G, ROW_SPLIT_DW_MAX_K) and xp is np:
                def dw_part(n0, n1):
                    return _row_split_dw(x[n0:n1], g[n0:n1], (O, Cg, KH, KW), stride, padding, dilation)
            elif G == 1 and cuda.enabled(xp, g.dtype):
                def dw_part(n0, n1):  # (KH*KW*C, N*OH*OW) @ (N*OH*OW, O) on cuBLAS
                    cols = cuda_ops.im2col(cuda.launcher(), xp, x[n0:n1], (KH, KW), stride, padding, dilation,
                                           (OH, OW))
                    acc = cols.T @ g_rows(n0, n1)[0]
                    return xp.ascontiguousarray(acc.reshape(KH, KW, Cg, Og).transpose(3, 2, 0, 1))
            else:
                def dw_part(n0, n1):
                    acc = xp.zeros((G, K, Og), dtype=g.dtype)
                    for c0, c1, cols in _columns(x[n0:n1], (O, Cg, KH, KW), stride, padding, dilation, G):
                        acc += matmul(cols.transpose(0, 2, 1), g_rows(n0 + c0, n0 + c1))  # (G, KH*KW*Cg, Og)
                    acc = acc.reshape(G, KH, KW, Cg, Og).transpose(0, 4, 3, 1, 2).reshape(O, Cg, KH, KW)
                    return xp.ascontiguousarray(acc)
            partial = _batch_parts(xp, N, dw_part)
            dw = partial[0]
            for p in partial[1:]:
                dw += p
        if need_dx and stride == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1):
            # NOTE: for stride 1, dx is itself a conv of g with the flipped, in/out-swapped kernel
            # and padding d*(K-1) - p: cheaper than a GEMM writing KH*KW times dx's size + col2im.
            wflip = self.w.reshape(G, Og, Cg, KH, KW).transpose(0, 2, 1, 3, 4).reshape(C, Og, KH, KW)
            wflip = wflip[:, :, ::-1, ::-1]                                  # (C, O/G, KH, KW)
            pflip = (DH * (KH - 1) - PH, DW * (KW - 1) - PW)
            dxmat = _conv_gemm(g, wflip, (1, 1), pflip, dilation, G)         # (N*H*W, C)
            dx = dxmat.reshape(N, H, W, C).transpose(0, 3, 1, 2)             # (N, C, H, W) view
        elif need_dx and G == 1 and cuda.enabled(xp, g.dtype):  # GEMM on cuBLAS, then a gather-form col2im kernel
            dcols = g_rows(0, N)[0] @ _weight_matrix(self.w, 1)[0].T          # (N*OH*OW, KH*KW*C)
            dx = cuda_ops.col2im(cuda.launcher(), xp, dcols, (N, C, H, W), (KH, KW), stride, padding, dilation,
                                 (OH, OW))
        elif need_dx:
            wmat_t = _weight_matrix(self.w, G).transpose(0, 2, 1)            # (G, Og, KH*KW*Cg)
            dxpad = xp.empty((N, H + 2 * PH, W + 2 * PW, C), dtype=g.dtype)
            B = _chunk_images(xp, (N, C, H, W), (O, Cg, KH, KW), (OH, OW), g.dtype.itemsize)

            def dx_part(p0, p1):
                for n0 in range(p0, p1, B):
                    n1 = min(p1, n0 + B)
                    n = n1 - n0
                    dcols = matmul(g_rows(n0, n1), wmat_t).reshape(G, n, OH, OW, KH, KW, Cg)
                    dcols = dcols.transpose(1, 2, 3, 4, 5, 0, 6).reshape(n, OH, OW, KH, KW, C)  # channel g*Cg + c
                    col2im_nhwc(dcols, (n, H + 2 * PH, W + 2 * PW, C), stride, dilation, out=dxpad[n0:n1])
            _batch_parts(xp, N, dx_part)
            dx = dxpad[:, PH:PH + H, PW:PW + W, :].transpose(0, 3, 1, 2)     # (N, C, H, W) view
        return dx, dw, db


def _int_arg(op: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: argument '{name}' must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: argument '{name}' must be >= {minimum}, got {value}")
    return int(value)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with w (O, C/groups, KH, KW) plus optional bias b (O,)."""
    op = "conv2d"
    x, w, b = amp.cast_for_gemm(x, w, b)  # float16 under minires.amp.autocast
    _validate.tensor_arg(op, "input", x, ndim=4)
    _validate.tensor_arg(op, "weight", w, ndim=4)
    if b is not None:
        _validate.tensor_arg(op, "bias", b, ndim=1)
    _validate.same_device(op, input=x, weight=w, bias=b)
    _validate.same_dtype(op, input=x, weight=w, bias=b)
    stride = _validate.pair(op, "stride", stride, 1)
    padding = _validate.pair(op, "padding", padding, 0)
    dilation = _validate.pair(op, "dilation", dilation, 1)
    groups = _int_arg(op, "groups", groups, 1)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    if C != Cg * groups:
        raise ValueError(f"{op}: input has {C} channels but weight {w.shape} with groups={groups} "
                         f"expects {Cg * groups} (input shape {x.shape})")
    if O % groups:
        raise ValueError(f"{op}: out channels {O} of weight {w.shape} are not divisible by groups={groups}")
    if b is not None and b.shape != (O,):
        raise ValueError(f"{op}: bias must have shape ({O},) for weight {w.shape}, got {b.shape}")
    if min(O, Cg, KH, KW, H, W) < 1:  # an empty batch (N = 0) is fine, as in PyTorch
        raise ValueError(f"{op}: empty input {x.shape} or weight {w.shape}")
    for axis, size, k in (("height", H, KH), ("width", W, KW)):
        d = dilation[0] if axis == "height" else dilation[1]
        p = padding[0] if axis == "height" else padding[1]
        if size + 2 * p < d * (k - 1) + 1:
            raise ValueError(
                f"{op}: kernel {(KH, KW)} with dilation {dilation} spans {d * (k - 1) + 1} pixels, larger "
                f"than the padded input {axis} {size + 2 * p} (input {x.shape}, padding {padding})")
    return Conv2d.apply(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
