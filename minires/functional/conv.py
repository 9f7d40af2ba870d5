"""2-D convolution (PyTorch semantics, NCHW): the reference im2col + GEMM, and F.conv2d.

Forward: the columns of the padded input hold, for every output pixel, its receptive field
(Cg*KH*KW values per group), so each group's conv is one GEMM of its weights (O/G, Cg*KH*KW)
with its columns. Backward: dw = g @ columns^T summed over the batch, db = the sum of g, and
dx = the columns' gradient w^T @ g scattered back onto the input by col2im (im2col's adjoint).
ConvGeometry names what backward keeps of the forward call.
"""
from __future__ import annotations

from typing import NamedTuple

from .. import _validate, dispatch
from ..backend import get_array_module
from ..tensor import Function


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """PyTorch's output length: floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_size(x_shape, w_shape, stride, padding, dilation) -> tuple[int, int]:
    """(OH, OW) of x (N, C, H, W) conv w (O, Cg, KH, KW)."""
    return tuple(conv_output_size(x_shape[2 + a], w_shape[2 + a], stride[a], padding[a], dilation[a]) for a in (0, 1))


class ConvGeometry(NamedTuple):
    """A conv2d call's shapes and integer parameters, as its backward needs them."""

    x_shape: tuple   # (N, C, H, W)
    w_shape: tuple   # (O, Cg, KH, KW), Cg = C / groups
    stride: tuple    # (SH, SW)
    padding: tuple   # (PH, PW)
    dilation: tuple  # (DH, DW)
    groups: int


def _offsets(kernel_size, stride, dilation, out_size):
    """(i, j, rows, cols) per kernel offset (i, j): the padded-input pixels it meets, one per output pixel."""
    (KH, KW), (SH, SW), (DH, DW), (OH, OW) = kernel_size, stride, dilation, out_size
    for i in range(KH):
        for j in range(KW):
            yield i, j, slice(i * DH, i * DH + SH * (OH - 1) + 1, SH), slice(j * DW, j * DW + SW * (OW - 1) + 1, SW)


def _im2col(xpad, kernel_size, stride, dilation, out_size):
    """Padded input (N, C, Hp, Wp) -> columns (N, C, KH, KW, OH, OW)."""
    xp = get_array_module(xpad)
    cols = xp.empty(xpad.shape[:2] + tuple(kernel_size) + tuple(out_size), dtype=xpad.dtype)
    for i, j, rows, cs in _offsets(kernel_size, stride, dilation, out_size):
        cols[:, :, i, j] = xpad[:, :, rows, cs]
    return cols


def _col2im(cols, padded_shape, stride, dilation):
    """Columns (N, C, KH, KW, OH, OW) -> padded input (N, C, Hp, Wp), overlaps summed: im2col's adjoint."""
    xp = get_array_module(cols)
    xpad = xp.zeros(padded_shape, dtype=cols.dtype)
    for i, j, rows, cs in _offsets(cols.shape[2:4], stride, dilation, cols.shape[4:]):
        xpad[:, :, rows, cs] += cols[:, :, i, j]  # one offset meets each pixel at most once: += is exact
    return xpad


class Conv2d(Function):
    """out[n, o, h, w] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] * xpad[n, c, s*h + d*i, s*w + d*j]."""

    name = "conv2d"
    input_names = ("input", "weight", "bias")

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        xp = get_array_module(x)
        N, (PH, PW), G = x.shape[0], padding, groups
        O, Cg, KH, KW = w.shape
        OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
        xpad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))             # (N, C, H+2PH, W+2PW)
        cols = _im2col(xpad, (KH, KW), stride, dilation, (OH, OW))         # (N, C, KH, KW, OH, OW)
        cols = cols.reshape(N, G, Cg * KH * KW, OH * OW)                    # group g: channels g*Cg .. g*Cg+Cg-1
        out = w.reshape(G, O // G, Cg * KH * KW) @ cols                     # (N, G, O/G, OH*OW)
        out = out.reshape(N, O, OH, OW)
        if b is not None:
            out += b.reshape(O, 1, 1)
        self.geom = ConvGeometry(x.shape, w.shape, stride, padding, dilation, G)
        self.cols = cols if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        return out

    def backward(self, g):
        (N, C, H, W), (O, Cg, KH, KW), stride, (PH, PW), dilation, G = self.geom
        OH, OW = g.shape[2:]
        g = g.reshape(N, G, O // G, OH * OW)                                # (N, G, O/G, OH*OW)
        dx = dw = db = None
        if self.needs_input_grad[0]:
            wt = self.w.reshape(G, O // G, Cg * KH * KW).transpose(0, 2, 1)  # (G, Cg*KH*KW, O/G)
            dcols = (wt @ g).reshape(N, C, KH, KW, OH, OW)                  # (N, G, Cg*KH*KW, OH*OW) -> columns
            dxpad = _col2im(dcols, (N, C, H + 2 * PH, W + 2 * PW), stride, dilation)
            dx = dxpad[:, :, PH:PH + H, PW:PW + W]                          # (N, C, H, W)
        if self.needs_input_grad[1]:
            dw = (g @ self.cols.transpose(0, 1, 3, 2)).sum(axis=0)         # (G, O/G, Cg*KH*KW)
            dw = dw.reshape(O, Cg, KH, KW)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            db = g.sum(axis=(0, 3)).reshape(O)
        return dx, dw, db


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with w (O, C/groups, KH, KW) plus optional bias b (O,)."""
    op = "conv2d"
    _validate.tensor_arg(op, "input", x, ndim=4)
    _validate.tensor_arg(op, "weight", w, ndim=4)
    if b is not None:
        _validate.tensor_arg(op, "bias", b, ndim=1)
    stride = _validate.pair(op, "stride", stride, 1)
    padding = _validate.pair(op, "padding", padding, 0)
    dilation = _validate.pair(op, "dilation", dilation, 1)
    groups = _validate.int_arg(op, "groups", groups, 1)
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
    for a, axis in enumerate(("height", "width")):
        span, padded = dilation[a] * (w.shape[2 + a] - 1) + 1, x.shape[2 + a] + 2 * padding[a]
        if padded < span:
            raise ValueError(f"{op}: kernel {(KH, KW)} with dilation {dilation} spans {span} pixels, larger "
                             f"than the padded input {axis} {padded} (input {x.shape}, padding {padding})")
    return dispatch.call(Conv2d, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
