"""Fully connected layer y = x @ w.T + b, and flatten."""
from __future__ import annotations

import math

from .. import _validate, dispatch
from ..backend import get_array_module
from ..tensor import Function, Tensor


class Linear(Function):
    name = "linear"
    input_names = ("input", "weight", "bias")

    def forward(self, x, w, b=None):
        # x (..., in); w (out, in); b (out,)
        xp = get_array_module(x)
        self.x, self.w = x, w
        y = xp.matmul(x, w.T)  # (..., out)
        return y if b is None else y + b

    def backward(self, g):
        xp = get_array_module(g)
        x, w = self.x, self.w
        need_x, need_w, need_b = self.needs_input_grad
        N = math.prod(x.shape[:-1])  # all leading dims as one
        g2 = g.reshape(N, w.shape[0])  # (N, out)
        dx = xp.matmul(g, w) if need_x else None  # (..., in)
        dw = xp.matmul(g2.T, x.reshape(N, w.shape[1])) if need_w else None  # (out, in)
        db = g2.sum(axis=0) if need_b else None  # (out,)
        return dx, dw, db


def linear(input, weight, bias=None):
    """input (..., in) @ weight.T + bias with weight (out, in) and bias (out,), as torch.nn.functional.linear."""
    _validate.tensor_arg("linear", "input", input, min_ndim=1)
    _validate.tensor_arg("linear", "weight", weight, ndim=2)
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input features {input.shape[-1]} (input shape {input.shape}) do not match "
                         f"weight in_features {weight.shape[1]} (weight shape {weight.shape})")
    if bias is not None:
        _validate.tensor_arg("linear", "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: argument 'bias' must have shape ({weight.shape[0]},) to match weight "
                             f"{weight.shape}, got {bias.shape}")
    return dispatch.call(Linear, input, weight, bias)


def flatten(input, start_dim: int = 1, end_dim: int = -1):
    """Merge dims start_dim..end_dim into one, as torch.flatten (default keeps the batch dim)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"flatten: argument 'input' must be a Tensor, got {type(input).__name__}")
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"flatten: argument '{name}' must be an int, got {d!r}")
    return input.flatten(start_dim, end_dim)
