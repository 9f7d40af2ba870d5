"""Fully connected layer y = x @ w.T + b, and flatten."""
from __future__ import annotations

import math

from .. import _validate, amp
from ..tensor import Function
from ..tensor import Tensor
from ..kernels.cpu.gemm import matmul


class Linear(Function):
    name = "linear"

    # NOTE: on the CPU each product below splits its rows over the cores (minires.functional.gemm):
    # batch rows for y and dx, output features for dw, so dw needs no partial sums.

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
        g2 = g.reshape(x2.shape[0], w.shape[0])  # (N, out)
        dx = matmul(g2, w).reshape(self.x_shape) if self.needs_input_grad[0] else None  # (N, in)
        dw = matmul(g2.T, x2) if self.needs_input_grad[1] else None                     # (out, in)
        db = g2.sum(axis=0) if len(self.needs_input_grad) > 2 and self.needs_input_grad[2] else None
        return dx, dw, db


def linear(x, w, b=None):
    """x (..., in) @ w.T + b with w (out, in) and b (out,), as torch.nn.functional.linear."""
    x, w, b = amp.cast_for_gemm(x, w, b)  # float16 under minires.amp.autocast
    _validate.tensor_arg("linear", "input", x)
    _validate.tensor_arg("linear", "weight", w, ndim=2)
    if x.ndim == 0:
        raise ValueError(f"linear: argument 'input' must have at least 1 dimension, got shape {x.shape}")
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input features {x.shape[-1]} (input shape {x.shape}) do not match "
                         f"weight in_features {w.shape[1]} (weight shape {w.shape})")
    if b is not None:
        _validate.tensor_arg("linear", "bias", b)
        if b.shape != (w.shape[0],):
            raise ValueError(f"linear: argument 'bias' must have shape ({w.shape[0]},) to match weight "
                             f"{w.shape}, got {b.shape}")
    _validate.same_device("linear", input=x, weight=w, bias=b)
    _validate.same_dtype("linear", input=x, weight=w, bias=b)
    return Linear.apply(x, w, b)


def flatten(x, start_dim: int = 1, end_dim: int = -1):
    """Merge dims start_dim..end_dim into one, as torch.flatten (default keeps the batch dim)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"flatten: argument 'input' must be a Tensor, got {type(x).__name__}")
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"flatten: argument '{name}' must be an int, got {d!r}")
    return x.flatten(start_dim, end_dim)
