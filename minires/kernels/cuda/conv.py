"""CUDA fast path of conv2d (groups=1): im2col and col2im kernels (kernels.cu) around cuBLAS GEMMs.

Forward: whole-batch columns (N*OH*OW, KH*KW*C) gathered by the im2col kernel straight from x in any
layout, times Wmat on cuBLAS. Backward: dw = cols^T @ g on cuBLAS; dx is a conv of g with the
flipped kernel when the stride is 1, else g @ Wmat^T followed by a gather-form col2im kernel.
Grouped and depthwise convs on CuPy run in grouped.py beside this file.

Why not the reference: its columns are NCHW-ordered, built by KH*KW strided copies from a padded copy
of x, with one batched GEMM per image; the im2col kernel gathers channels-last rows straight from x
(no padded copy, any layout) for one whole-batch cuBLAS GEMM, and the output stays channels-last.
"""
from __future__ import annotations

from ...backend import get_array_module
from ...functional.conv import Conv2d, ConvGeometry, output_size
from ..shared import weight_matrix
from . import launcher, ops as cuda_ops


def _conv_gemm(x, w, stride, padding, dilation):
    """x (N, C, H, W) conv w (O, C, KH, KW), no bias -> (N*OH*OW, O) rows in NHWC order."""
    xp = get_array_module(x)
    out_size = output_size(x.shape, w.shape, stride, padding, dilation)
    cols = cuda_ops.im2col(launcher.cupy_launcher(), xp, x, w.shape[2:], stride, padding, dilation, out_size)
    return cols @ weight_matrix(w, 1)[0]                                     # cuBLAS


class Conv2dCUDA(Conv2d):
    """conv2d on CuPy arrays by the im2col/col2im kernels and cuBLAS (groups=1, non-empty batches)."""

    @classmethod
    def supports(cls, x, w, b=None, groups=1, **params):
        # An empty batch goes to the reference: no kernel launch with an empty grid.
        return launcher.enabled(get_array_module(x), x.dtype) and groups == 1 and x.shape[0] > 0

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, O = x.shape[0], w.shape[0]
        OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
        self.geom = ConvGeometry(x.shape, w.shape, stride, padding, dilation, groups)
        out = _conv_gemm(x, w, stride, padding, dilation)                   # (N*OH*OW, O)
        if b is not None:
            out += b
        self.x = x if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        return out.reshape(N, OH, OW, O).transpose(0, 3, 1, 2)             # (N, O, OH, OW) view of NHWC memory

    def backward(self, g):
        (N, C, H, W), (O, _, KH, KW), stride, padding, dilation, _ = self.geom  # groups is 1 (supports)
        OH, OW = g.shape[2:]
        (PH, PW), (DH, DW) = padding, dilation
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        need_db = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        xp = get_array_module(g)
        dx = dw = None
        db = g.sum(axis=(0, 2, 3)) if need_db else None
        flip = stride == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1)
        if need_dw or (need_dx and not flip):
            g_rows = g.transpose(0, 2, 3, 1).reshape(N * OH * OW, O)        # (N*OH*OW, O)
        if need_dw:  # (KH*KW*C, N*OH*OW) @ (N*OH*OW, O) on cuBLAS
            cols = cuda_ops.im2col(launcher.cupy_launcher(), xp, self.x, (KH, KW), stride, padding, dilation,
                                   (OH, OW))
            dw = xp.ascontiguousarray((cols.T @ g_rows).reshape(KH, KW, C, O).transpose(3, 2, 0, 1))
        if need_dx and flip:
            # NOTE: for stride 1, dx is itself a conv of g with the flipped, in/out-swapped kernel
            # and padding d*(K-1) - p: cheaper than a GEMM writing KH*KW times dx's size + col2im.
            wflip = self.w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]          # (C, O, KH, KW)
            pflip = (DH * (KH - 1) - PH, DW * (KW - 1) - PW)
            dx = _conv_gemm(g, wflip, (1, 1), pflip, dilation).reshape(N, H, W, C).transpose(0, 3, 1, 2)
        elif need_dx:  # GEMM on cuBLAS, then a gather-form col2im kernel
            dcols = g_rows @ weight_matrix(self.w, 1)[0].T                   # (N*OH*OW, KH*KW*C)
            dx = cuda_ops.col2im(launcher.cupy_launcher(), xp, dcols, (N, C, H, W), (KH, KW), stride, padding,
                                 dilation, (OH, OW))
        return dx, dw, db
