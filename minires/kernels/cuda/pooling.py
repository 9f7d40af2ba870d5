"""CUDA fast path of max_pool2d: one thread per window saves its argmax, one per pixel gathers the gradient.

avg_pool2d and adaptive_avg_pool2d have no kernel of their own: their references run on CuPy arrays.
"""
from __future__ import annotations

from ... import cuda, dispatch
from ...backend import get_array_module
from ...cuda import ops as cuda_ops
from ...functional import pooling


@dispatch.register("max_pool2d")
class MaxPool2dCUDA(pooling.MaxPool2d):
    """max_pool_forward / max_pool_backward of minires/cuda/kernels.cu (any strides in, int32 argmax)."""

    @classmethod
    def supports(cls, x, **params):
        # An empty batch takes the reference: no kernel launch with an empty grid.
        return cuda.enabled(get_array_module(x), x.dtype) and x.size > 0

    def forward(self, x, kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)):
        out_size = pooling.pool_output_size(x.shape, kernel_size, stride, padding)
        self.geom = (x.shape, kernel_size, stride, padding)
        out, self.idx = cuda_ops.max_pool(cuda.launcher(), get_array_module(x), x, kernel_size, stride, padding,
                                          out_size)
        return out

    def backward(self, g):
        return cuda_ops.max_pool_backward(cuda.launcher(), get_array_module(g), g, self.idx, *self.geom)
