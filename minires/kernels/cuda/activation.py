"""CUDA fast paths of relu and add_relu: the fused add_relu_forward and mask_grad kernels of kernels.cu.

Why not the reference (functional/activation.py): on CuPy its add_relu is three elementwise passes
(x + y into a temporary, the max, the mask); the kernel reads x and y once and writes out and mask.
Both backwards select g where the mask is set, in one pass into an array laid out like the mask.
"""
from __future__ import annotations

from ...backend import get_array_module
from ...functional import activation
from . import launcher, ops as cuda_ops


def _masked(g, mask):
    """g where mask else 0: the mask_grad kernel, or an elementwise product when g is laid out unlike the mask."""
    d = cuda_ops.mask_grad(launcher.cupy_launcher(), get_array_module(g), g, mask)
    return g * mask if d is None else d


class ReLUCUDA(activation.ReLU):
    """Forward in CuPy's elementwise ops (out and mask laid out like x), backward through mask_grad."""

    @classmethod
    def supports(cls, x):
        return launcher.enabled(get_array_module(x), x.dtype)

    def forward(self, x):
        xp = get_array_module(x)
        out, self.mask = xp.empty_like(x), xp.empty_like(x, dtype=bool)  # both laid out like x
        xp.maximum(x, 0, out=out)  # NOTE: maximum propagates NaN, as PyTorch does
        xp.greater(out, 0, out=self.mask)
        return out

    def backward(self, g):
        return _masked(g, self.mask)


class AddReLUCUDA(activation.AddReLU):
    """One fused pass writing out and mask, for x and y laid out alike (dense: C order or channels-last)."""

    @classmethod
    def supports(cls, x, y):
        # cuda_ops.add_relu takes dense x and y of one layout (it returns None otherwise): the
        # reference runs the other calls. channel_layout is None exactly for non-dense arrays.
        return (launcher.enabled(get_array_module(x), x.dtype) and x.dtype == y.dtype and x.shape == y.shape
                and x.strides == y.strides and cuda_ops.channel_layout(x) is not None)

    def forward(self, x, y):
        out, self.mask = cuda_ops.add_relu(launcher.cupy_launcher(), get_array_module(x), x, y)
        return out

    def backward(self, g):
        d = _masked(g, self.mask)  # the same gradient to both inputs; the graph walk never writes into it
        return (d if self.needs_input_grad[0] else None), (d if self.needs_input_grad[1] else None)
