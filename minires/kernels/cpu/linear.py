"""CPU fast path of linear: every product a 2-D GEMM through kernels.cpu.gemm (BLAS, rows split over the
cores while BLAS is held, float16 multiplied in float32), where the reference (functional/linear.py)
calls xp.matmul on x's own shape: a stack of small products for N-D x, and NumPy's generic loop for
float16."""
from __future__ import annotations

import math

import numpy as np

from ...functional.linear import Linear
from .gemm import matmul


class LinearCPU(Linear):
    """Linear on NumPy arrays.

    NOTE: x's leading dims are merged first, so each product is one 2-D GEMM that gemm.matmul
    splits by rows over the cores: batch rows for y and dx, output features for dw, so dw needs no
    partial sums. NumPy's float16 matmul would run its generic loop, ~100x slower than BLAS.
    """

    @classmethod
    def supports(cls, x, w, b=None):
        return isinstance(x, np.ndarray) and isinstance(w, np.ndarray) and (b is None or isinstance(b, np.ndarray))

    def forward(self, x, w, b=None):
        self.x_shape = x.shape
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # (N, in), N = all leading dims
        y = matmul(x2, w.T)  # (N, out)
        if b is not None:
            y += b
        self.x2, self.w = x2, w
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, g):
        x2, w = self.x2, self.w
        need_x, need_w, need_b = self.needs_input_grad
        g2 = g.reshape(x2.shape[0], w.shape[0])  # (N, out)
        dx = matmul(g2, w).reshape(self.x_shape) if need_x else None  # (N, in) -> x's shape
        dw = matmul(g2.T, x2) if need_w else None  # (out, in)
        db = g2.sum(axis=0) if need_b else None  # (out,)
        return dx, dw, db
