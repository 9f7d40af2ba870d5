"""im2col / col2im of the CPU conv (kernels/cpu/conv.py), in a channels-last column layout.

The columns of an NCHW input are laid out as (N, OH, OW, KH, KW, C): each output pixel's
receptive field is one contiguous row of KH*KW*C values, so a conv is a single GEMM
`cols.reshape(N*OH*OW, KH*KW*C) @ Wmat` (kernels/shared.py: weight_matrix) with the large dimension N*OH*OW as rows.
Transposing x to NHWC once (inside the padded copy) makes im2col one copy from a strided
window view whose inner runs are C contiguous values (KW*C for stride-1, undilated W), and
col2im KH*KW strided slice-adds of such runs.
"""
from __future__ import annotations

import importlib

from ...backend import get_array_module
from ...functional.conv import conv_output_size


def _as_strided(xp):
    """numpy.lib.stride_tricks.as_strided or CuPy's twin (imported by name: no cupy import here)."""
    return importlib.import_module(xp.__name__ + ".lib.stride_tricks").as_strided


def _pair(v):
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _offset_slice(start: int, count: int, stride: int) -> slice:
    """The `count` positions start, start+stride, ... as a basic slice (a view, never a copy)."""
    return slice(start, start + stride * (count - 1) + 1, stride)


def pad_nhwc(x, padding, fill=0):
    """x (N, C, H, W) -> padded channels-last copy (N, H+2*PH, W+2*PW, C) in x's dtype."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    PH, PW = _pair(padding)
    out = xp.empty((N, H + 2 * PH, W + 2 * PW, C), dtype=x.dtype)
    if PH or PW:  # fill only the border; the interior is overwritten just below
        out[:, :PH] = fill
        out[:, H + PH:] = fill
        out[:, :, :PW] = fill
        out[:, :, W + PW:] = fill
    out[:, PH:PH + H, PW:PW + W, :] = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC in one strided copy
    return out


def im2col_nhwc(xpad, kernel_size, stride, dilation, out_size, out=None):
    """Padded NHWC input (N, Hp, Wp, C) -> columns (N, OH, OW, KH, KW, C), written into `out` if given."""
    xp = get_array_module(xpad)
    N, _, _, C = xpad.shape
    KH, KW = kernel_size
    (SH, SW), (DH, DW), (OH, OW) = stride, dilation, out_size
    cols = xp.empty((N, OH, OW, KH, KW, C), dtype=xpad.dtype) if out is None else out
    # A read-only strided view of every window, copied once. NOTE: this beats a loop of KH*KW
    # slice copies by ~3x on the CPU: for stride-1, undilated W the (KW, C) axes merge into one
    # contiguous run of KW*C values, and it is one pass instead of KH*KW.
    xpad = xp.ascontiguousarray(xpad)
    sN, sH, sW, sC = xpad.strides
    windows = _as_strided(xp)(
        xpad, (N, OH, OW, KH, KW, C), (sN, sH * SH, sW * SW, sH * DH, sW * DW, sC))
    cols[...] = windows
    return cols


def col2im_nhwc(cols, padded_shape, stride, dilation, out=None):
    """Columns (N, OH, OW, KH, KW, C) -> padded NHWC sum (N, Hp, Wp, C), the adjoint of im2col_nhwc.

    `out`, if given, is overwritten (zeroed first).
    """
    xp = get_array_module(cols)
    N, OH, OW, KH, KW, C = cols.shape
    SH, SW = stride
    DH, DW = dilation
    if out is None:
        out = xp.zeros(padded_shape, dtype=cols.dtype)
    else:
        out.fill(0)
    Wp = out.shape[2]
    # NOTE: within one kernel offset the strided slice hits each pixel at most once, so a plain
    # slice-add is exact; overlaps between offsets are handled by the KH*KW separate adds.
    for i in range(KH):
        rows = _offset_slice(i * DH, OH, SH)
        if DW != 1 or SW == 1:
            for j in range(KW):
                out[:, rows, _offset_slice(j * DW, OW, SW), :] += cols[:, :, :, i, j, :]
            continue
        # Strided, undilated: SW adjacent offsets j0..j0+SW-1 hit adjacent pixels SW*ow + j, so
        # they go in one add of SW*C-value runs (one C-value run per offset measured ~3x slower).
        for j0 in range(0, KW, SW):
            nt = min(SW, KW - j0)
            full = OW if j0 + SW * OW <= Wp else OW - 1  # the last window's block may pass the edge
            if full > 0:
                dst = out[:, rows, j0:j0 + SW * full, :].reshape(N, OH, full, SW, C)[:, :, :, :nt, :]
                dst += cols[:, :, :full, i, j0:j0 + nt, :]
            if full < OW:
                c0 = j0 + SW * (OW - 1)
                out[:, rows, c0:c0 + nt, :] += cols[:, :, OW - 1, i, j0:j0 + nt, :]
    return out


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """NCHW array x -> columns (N, OH, OW, KH, KW, C); reshape to (N*OH*OW, KH*KW*C) for a GEMM."""
    N, C, H, W = x.shape
    KH, KW = _pair(kernel_size)
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    OH = conv_output_size(H, KH, stride[0], padding[0], dilation[0])
    OW = conv_output_size(W, KW, stride[1], padding[1], dilation[1])
    if OH < 1 or OW < 1:
        raise ValueError(f"im2col: kernel {(KH, KW)} (dilation {dilation}) does not fit input {x.shape} "
                         f"with padding {padding}")
    return im2col_nhwc(pad_nhwc(x, padding), (KH, KW), stride, dilation, (OH, OW))


def col2im(cols, x_shape, stride=1, padding=0, dilation=1):
    """Columns (N, OH, OW, KH, KW, C) -> NCHW array of x_shape, summing overlaps (adjoint of im2col)."""
    N, C, H, W = x_shape
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    PH, PW = padding
    out = col2im_nhwc(cols, (N, H + 2 * PH, W + 2 * PW, C), stride, dilation)
    return out[:, PH:PH + H, PW:PW + W, :].transpose(0, 3, 1, 2)  # (N, C, H, W) view of the NHWC sum
