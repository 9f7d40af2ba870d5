"""CUDA fast paths of grouped and depthwise conv2d (groups > 1): direct depthwise kernels, and grouped
columns for one batched cuBLAS GEMM.

Why not the reference (minires.functional.conv): it builds NCHW columns from a padded copy of x by
KH*KW strided copies and runs one small GEMM per (image, group). Here a depthwise conv (groups = C,
Cg = 1) has no GEMM at all: one kernel launch computes each output value from its KH*KW taps
(kernels.cu depthwise_forward), dx is a gather of g over the windows that read each pixel, and dw is
a two-pass reduction (S partial sums per tap, then their sum), all on x and g in place in any layout.
A grouped conv (1 < groups < C) gathers every group's channels-last columns in one im2col launch,
laid out (G, N*OH*OW, KH*KW*Cg), for one strided-batched GEMM over the groups (cupy.matmul of
contiguous 3-D stacks); dw likewise, and dx by the flipped kernel at stride 1 or col2im otherwise.

NOTE: the depthwise kernels skip the padding taps rather than multiply by the zeros there, so an
inf or NaN in g (dw) or in w (forward) is not turned into NaN by a 0 * inf at the border, as the
reference's zero-padded columns do. Finite inputs give the reference's values.

NOTE: this has not run on a real GPU. It is checked on the CPU through the CuPy stand-in and the
kernel emulator (tests/cuda/test_conv_grouped_cuda.py), which test the index arithmetic and the
math, not speed; the layout choices below are reasoned, not measured (benchmarks/gpu_check.sh runs
the GPU checks where a GPU is lent).
"""
from __future__ import annotations

from ...backend import get_array_module
from ...functional.conv import Conv2d, ConvGeometry, output_size
from ..shared import weight_matrix
from . import launcher, ops as cuda_ops


def _channels_last(x) -> bool:
    """x is an (N, C, H, W) view of channels-last memory (and not also C-contiguous)."""
    return x.transpose(0, 2, 3, 1).flags.c_contiguous and not x.flags.c_contiguous


def _bias_grad(g, needs_input_grad):
    return g.sum(axis=(0, 2, 3)) if len(needs_input_grad) > 2 and needs_input_grad[2] else None


class DepthwiseConv2dCUDA(Conv2d):
    """Depthwise conv2d (groups = in channels, any channel multiplier) on CuPy arrays by direct kernels."""

    @classmethod
    def supports(cls, x, w, b=None, groups=1, **params):
        # An empty batch goes to the reference: no kernel launch with an empty grid.
        return launcher.enabled(get_array_module(x), x.dtype) and groups > 1 and w.shape[1] == 1 and x.shape[0] > 0

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        xp = get_array_module(x)
        out_size = output_size(x.shape, w.shape, stride, padding, dilation)
        self.geom = ConvGeometry(x.shape, w.shape, stride, padding, dilation, groups)
        # NOTE: the output keeps x's layout, so that adjacent threads read adjacent memory of x in
        # both layouts (channels in channels-last, pixels in NCHW); after Conv2dCUDA and batch norm
        # that is channels-last. Reasoned, not measured (no GPU here).
        self.cl = _channels_last(x)
        self.x = x if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        return cuda_ops.depthwise_forward(launcher.cupy_launcher(), xp, x, w, b, stride, padding, dilation, out_size,
                                          self.cl)

    def backward(self, g):
        x_shape, w_shape, stride, padding, dilation, _ = self.geom
        xp = get_array_module(g)
        launch = launcher.cupy_launcher()
        dx = dw = None
        if self.needs_input_grad[0]:  # a gather: each input pixel sums the outputs it fed, no atomics
            dx = cuda_ops.depthwise_backward_input(launch, xp, g, self.w, x_shape, stride, padding, dilation, self.cl)
        if self.needs_input_grad[1]:
            # NOTE: a two-pass reduction rather than one block per tap with a shared-memory tree: it
            # needs no __syncthreads (the emulator runs threads one after another), and with S
            # partials per tap (tuning.STAT_THREADS in all) the GPU stays full even for the few taps
            # of a 3x3 depthwise layer (O*9 outputs, each summing N*OH*OW products).
            dw = cuda_ops.depthwise_backward_weight(launch, xp, g, self.x, w_shape[2:], stride, padding, dilation,
                                                    self.cl)
        return dx, dw, _bias_grad(g, self.needs_input_grad)


def _grouped_gemm(x, w, stride, padding, dilation, groups):
    """x (N, C, H, W) conv w (O, C/G, KH, KW) in G groups, no bias -> (N*OH*OW, O) rows in NHWC order."""
    xp = get_array_module(x)
    out_size = output_size(x.shape, w.shape, stride, padding, dilation)
    cols = cuda_ops.im2col(launcher.cupy_launcher(), xp, x, w.shape[2:], stride, padding, dilation, out_size,
                           groups)                                           # (G, N*OH*OW, KH*KW*Cg)
    out = xp.matmul(cols, weight_matrix(w, groups))                          # (G, N*OH*OW, O/G): batched cuBLAS
    # NOTE: one copy of the output into channels-last rows (an output-sized pass; the columns are
    # KH*KW*Cg/Og times larger), so the next layer gets the layout every CUDA path keeps.
    return out.transpose(1, 0, 2).reshape(out.shape[1], w.shape[0])


class GroupedConv2dCUDA(Conv2d):
    """Grouped conv2d (1 < groups < in channels) on CuPy arrays: grouped im2col and one batched cuBLAS GEMM."""

    @classmethod
    def supports(cls, x, w, b=None, groups=1, **params):
        return launcher.enabled(get_array_module(x), x.dtype) and groups > 1 and w.shape[1] > 1 and x.shape[0] > 0

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, O = x.shape[0], w.shape[0]
        OH, OW = output_size(x.shape, w.shape, stride, padding, dilation)
        self.geom = ConvGeometry(x.shape, w.shape, stride, padding, dilation, groups)
        out = _grouped_gemm(x, w, stride, padding, dilation, groups)       # (N*OH*OW, O)
        if b is not None:
            out += b
        self.x = x if self.needs_input_grad[1] else None
        self.w = w if self.needs_input_grad[0] else None
        return out.reshape(N, OH, OW, O).transpose(0, 3, 1, 2)             # (N, O, OH, OW) view of NHWC memory

    def backward(self, g):
        (N, C, H, W), (O, Cg, KH, KW), stride, padding, dilation, G = self.geom
        (OH, OW), (PH, PW), (DH, DW) = g.shape[2:], padding, dilation
        xp = get_array_module(g)
        launch = launcher.cupy_launcher()
        need_dx, need_dw = self.needs_input_grad[0], self.needs_input_grad[1]
        dx = dw = None
        flip = stride == (1, 1) and PH <= DH * (KH - 1) and PW <= DW * (KW - 1)
        # NOTE: cupy.matmul makes both operands of a batched (> 2-D) product C-contiguous first (CuPy's
        # _routines_linalg.pyx), so no operand here is a transposed view of the columns: dw is computed
        # transposed, g^T @ cols, and only g (the columns' Og / (KH*KW*Cg)) is copied into place.
        if need_dw:  # (G, O/G, N*OH*OW) @ (G, N*OH*OW, KH*KW*Cg), batched on cuBLAS
            g_t = xp.ascontiguousarray(g.reshape(N, G, O // G, OH, OW).transpose(1, 2, 0, 3, 4))
            cols = cuda_ops.im2col(launch, xp, self.x, (KH, KW), stride, padding, dilation, (OH, OW), G)
            dwt = xp.matmul(g_t.reshape(G, O // G, N * OH * OW), cols)         # (G, O/G, KH*KW*Cg)
            dw = xp.ascontiguousarray(dwt.reshape(O, KH, KW, Cg).transpose(0, 3, 1, 2))  # (O, Cg, KH, KW)
        if need_dx and flip:
            # NOTE: at stride 1, dx is a grouped conv of g with each group's kernel flipped and its in/out
            # channels swapped (padding d*(K-1) - p), as Conv2dCUDA does: no KH*KW-times-dx columns + col2im.
            wflip = self.w.reshape(G, O // G, Cg, KH, KW).transpose(0, 2, 1, 3, 4).reshape(C, O // G, KH, KW)
            pflip = (DH * (KH - 1) - PH, DW * (KW - 1) - PW)
            dx = _grouped_gemm(g, wflip[:, :, ::-1, ::-1], (1, 1), pflip, dilation, G)
            dx = dx.reshape(N, H, W, C).transpose(0, 3, 1, 2)
        elif need_dx:  # batched GEMM on cuBLAS, then the gather-form col2im kernel
            g_rows = xp.ascontiguousarray(g.transpose(0, 2, 3, 1).reshape(N * OH * OW, G, O // G).transpose(1, 0, 2))
            wt = xp.ascontiguousarray(weight_matrix(self.w, G).transpose(0, 2, 1))  # (G, O/G, KH*KW*Cg)
            dcols = xp.matmul(g_rows, wt)                                    # (G, N*OH*OW, KH*KW*Cg)
            dx = cuda_ops.col2im(launch, xp, dcols, (N, C, H, W), (KH, KW), stride, padding, dilation, (OH, OW), G)
        return dx, dw, _bias_grad(g, self.needs_input_grad)
