"""2-D convolution (PyTorch semantics, NCHW) by channels-last im2col + one GEMM; backward by col2im."""
from __future__ import annotations

import numbers

from .. import _validate
from ..autograd import Function
from ..backend import get_array_module
from .im2col import WORKSPACE, col2im_nhwc, conv_output_size, im2col_nhwc, pad_nhwc


def _conv_gemm(x, w, stride, padding, dilation, G):
    """x (N, C, H, W) conv w (O, C/G, KH, KW) without bias -> (out (N*OH*OW, O), cols, cols6, wmat).

    cols is the GEMM's left operand ((N*OH*OW, K) for G = 1, (G, N*OH*OW, K) otherwise), cols6 the
    workspace array behind it (None when regrouping copied it) and wmat the right operand.
    """
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    Og = O // G
    OH = conv_output_size(H, KH, stride[0], padding[0], dilation[0])
    OW = conv_output_size(W, KW, stride[1], padding[1], dilation[1])
    M, K = N * OH * OW, KH * KW * Cg
    xpad = pad_nhwc(x, padding)                                              # (N, Hp, Wp, C)
    cols6 = im2col_nhwc(xpad, (KH, KW), stride, dilation, (OH, OW))          # (N, OH, OW, KH, KW, C)
    WORKSPACE.give(xpad)
    if G == 1:
        cols = cols6.reshape(M, K)                                           # (N*OH*OW, KH*KW*C)
        wmat = w.transpose(2, 3, 1, 0).reshape(K, O)                         # (KH*KW*C, O)
        return cols @ wmat, cols, cols6, wmat                                # (N*OH*OW, O)
    # NOTE: a group's channels are not contiguous in a row of cols, so regroup them once.
    cols = cols6.reshape(M, KH * KW, G, Cg).transpose(2, 0, 1, 3).reshape(G, M, K)  # (G, M, KH*KW*Cg)
    WORKSPACE.give(cols6)
    wmat = w.reshape(G, Og, Cg, KH, KW).transpose(0, 3, 4, 2, 1).reshape(G, K, Og)  # (G, KH*KW*Cg, Og)
    out = (cols @ wmat).transpose(1, 0, 2).reshape(M, O)                     # (N*OH*OW, O)
    return out, cols, None, wmat


class Conv2d(Function):
    """out[n, o] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] * xpad[n, c, s*h + d*i, s*w + d*j]."""

    name = "conv2d"

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, C, H, W = x.shape
        O = w.shape[0]
        out, cols, cols6, wmat = _conv_gemm(x, w, stride, padding, dilation, groups)  # (N*OH*OW, O)
        if b is not None:
            out += b
        # Keep the columns only if dw is wanted (recomputing them would cost a second im2col);
        # they go back to the workspace in release(), once backward is done with them.
        self.cols, self.cols6 = (cols, cols6) if self.needs_input_grad[1] else (None, None)
        if not self.needs_input_grad[1]:
            WORKSPACE.give(cols6)
        self.wmat = wmat if self.needs_input_grad[0] else None
        self.w = w if self.needs_input_grad[0] else None
        OH = conv_output_size(H, w.shape[2], stride[0], padding[0], dilation[0])
        OW = conv_output_size(W, w.shape[3], stride[1], padding[1], dilation[1])
        self.geom = (x.shape, w.shape, (OH, OW), stride, padding, dilation, groups)
        # NOTE: the result is an (N, O, OH, OW) view of channels-last memory, as PyTorch's
        # channels_last tensors are: elementwise ops keep the layout, and the next conv's NHWC
        # transpose then reads contiguously instead of paying a transpose copy here.
        return out.reshape(N, OH, OW, O).transpose(0, 3, 1, 2)             # (N, O, OH, OW)

    def backward(self, g):
        (N, C, H, W), (O, Cg, KH, KW), (OH, OW), stride, padding, dilation, G = self.geom
        Og, M, K = O // G, N * OH * OW, KH * KW * Cg
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        need_db = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        xp = get_array_module(g)
        gmat = g.transpose(0, 2, 3, 1).reshape(M, O)                         # (N*OH*OW, O), free if g is NHWC
        dx = dw = db = None
        if need_db:
            db = gmat.sum(axis=0)
        # NOTE: for stride 1, dx is itself a conv of g with the flipped, in/out-swapped kernel and
        # padding d*(K-1) - p: one im2col copy + a GEMM writing dx, cheaper than a GEMM writing
        # KH*KW times dx's size and a col2im summing it back.
        (PH, PW), (DH, DW) = padding, dilation
        full_conv = stride == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1)
        if need_dx and full_conv:
            wflip = self.w.reshape(G, Og, Cg, KH, KW).transpose(0, 2, 1, 3, 4).reshape(C, Og, KH, KW)
            wflip = wflip[:, :, ::-1, ::-1]                                  # (C, O/G, KH, KW)
            pflip = (DH * (KH - 1) - PH, DW * (KW - 1) - PW)
            dxmat, _, cols6, _ = _conv_gemm(g, wflip, (1, 1), pflip, dilation, G)  # (N*H*W, C)
            WORKSPACE.give(cols6)
            dx = dxmat.reshape(N, H, W, C).transpose(0, 3, 1, 2)             # (N, C, H, W) view
            need_dx = False
        if G == 1:
            if need_dw:
                dw = (self.cols.T @ gmat).reshape(KH, KW, Cg, O).transpose(3, 2, 0, 1)  # (O, C, KH, KW)
            if need_dx:
                dcols = WORKSPACE.empty((N, OH, OW, KH, KW, C), g.dtype, xp)
                xp.matmul(gmat, self.wmat.T, out=dcols.reshape(M, K))       # (N*OH*OW, KH*KW*C)
        else:
            ggrp = gmat.reshape(M, G, Og).transpose(1, 0, 2)                 # (G, M, Og)
            if need_dw:
                dw = self.cols.transpose(0, 2, 1) @ ggrp                     # (G, KH*KW*Cg, Og)
                dw = dw.reshape(G, KH, KW, Cg, Og).transpose(0, 4, 3, 1, 2).reshape(O, Cg, KH, KW)
            if need_dx:
                dcols = ggrp @ self.wmat.transpose(0, 2, 1)                  # (G, M, KH*KW*Cg)
                dcols = dcols.reshape(G, N, OH, OW, KH, KW, Cg).transpose(1, 2, 3, 4, 5, 0, 6)
                dcols = dcols.reshape(N, OH, OW, KH, KW, C)                  # channel = g*Cg + c
        if need_dx:
            dxpad = col2im_nhwc(dcols, (N, H + 2 * PH, W + 2 * PW, C), stride, dilation)
            dx = dxpad[:, PH:PH + H, PW:PW + W, :].transpose(0, 3, 1, 2)     # (N, C, H, W) view
            WORKSPACE.give(dcols)
        if dw is not None:
            dw = xp.ascontiguousarray(dw)  # small; parameters' grads should be plain arrays
        return dx, dw, db

    def release(self) -> None:
        WORKSPACE.give(getattr(self, "cols6", None))
        super().release()


def _int_arg(op: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: argument '{name}' must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: argument '{name}' must be >= {minimum}, got {value}")
    return int(value)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with w (O, C/groups, KH, KW) plus optional bias b (O,)."""
    op = "conv2d"
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
    if min(O, Cg, KH, KW, N) < 1 or min(H, W) < 0:
        raise ValueError(f"{op}: empty input {x.shape} or weight {w.shape}")
    for axis, size, k in (("height", H, KH), ("width", W, KW)):
        d = dilation[0] if axis == "height" else dilation[1]
        p = padding[0] if axis == "height" else padding[1]
        if size + 2 * p < d * (k - 1) + 1:
            raise ValueError(
                f"{op}: kernel {(KH, KW)} with dilation {dilation} spans {d * (k - 1) + 1} pixels, larger "
                f"than the padded input {axis} {size + 2 * p} (input {x.shape}, padding {padding})")
    return Conv2d.apply(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
