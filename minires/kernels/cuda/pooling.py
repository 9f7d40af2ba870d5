"""CUDA fast path of max_pool2d: one thread per window saves its argmax, one per pixel gathers the gradient.

Global average pooling (the ResNet head) keeps a channels-last input's layout through CuPy reductions, so
the residual add and batch norm behind it in backward read a gradient laid out like their own arrays.
avg_pool2d and other adaptive sizes have no kernel of their own: their references run on CuPy arrays.

Why not the reference (functional/pooling.py): its max pool is KH*KW passes over a -inf padded copy,
each a compare and two masked writes, and its backward KH*KW where() passes; the kernels read each
window once with no padded copy and write dx in gather form, one pass each way.
"""
from __future__ import annotations

from ...backend import get_array_module
from ...functional import pooling
from ..shared import global_mean_backward
from . import launcher, ops as cuda_ops


class MaxPool2dCUDA(pooling.MaxPool2d):
    """max_pool_forward / max_pool_backward of kernels.cu (any strides in, int32 argmax)."""

    @classmethod
    def supports(cls, x, **params):
        # An empty batch takes the reference: no kernel launch with an empty grid.
        return launcher.enabled(get_array_module(x), x.dtype) and x.size > 0

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        out_size = pooling.pool_output_size(x.shape, kernel_size, stride, padding)
        self.geom = (x.shape, kernel_size, stride, padding)
        out, self.idx = cuda_ops.max_pool(launcher.cupy_launcher(), get_array_module(x), x, kernel_size, stride,
                                          padding, out_size)
        return out

    def backward(self, g):
        return cuda_ops.max_pool_backward(launcher.cupy_launcher(), get_array_module(g), g, self.idx, *self.geom)


class AdaptiveAvgPool2dCUDA(pooling.AdaptiveAvgPool2d):
    """Global mean over H and W as one CuPy reduction, over the H*W axis of channels-last memory."""

    @classmethod
    def supports(cls, x, output_size=(1, 1)):
        return launcher.enabled(get_array_module(x), x.dtype) and tuple(output_size) == (1, 1) and x.size > 0

    def forward(self, x, output_size=(1, 1)):
        N, C, H, W = x.shape
        self.shape = x.shape
        self.channels_last = not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous
        if self.channels_last:
            return x.transpose(0, 2, 3, 1).reshape(N, H * W, C).mean(axis=1).reshape(N, C, 1, 1)  # (N, C, 1, 1)
        return x.mean(axis=(2, 3), keepdims=True)                              # (N, C, 1, 1)

    def backward(self, g):
        return global_mean_backward(g, self.shape, self.channels_last)
