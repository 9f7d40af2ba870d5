"""Layer normalisation over the trailing dims of each sample."""
from __future__ import annotations

import math
import numbers

from .. import _validate, dispatch
from .._validate import normalized_shape_arg  # noqa: F401 - its old home (nn.LayerNorm imports it here)
from ..backend import get_array_module
from ..tensor import Function


class LayerNorm(Function):
    name = "layer_norm"
    input_names = ("input", "weight", "bias")

    def forward(self, x, w=None, b=None, k=1, eps=1e-5):
        # x (*, *normalized_shape) with k normalized dims; w, b normalized_shape
        xp = get_array_module(x)
        self.axes = tuple(range(x.ndim - k, x.ndim))
        xc = x - x.mean(axis=self.axes, keepdims=True)  # (*, 1, ..., 1) broadcast
        # NOTE: two-pass variance (centre, then square) avoids E[x^2] - E[x]^2 cancellation in float32.
        var = (xc * xc).mean(axis=self.axes, keepdims=True)  # biased, as PyTorch
        self.invstd = 1 / xp.sqrt(var + eps)
        self.xhat, self.w = xc * self.invstd, w
        y = self.xhat * w if w is not None else self.xhat
        return y + b if b is not None else y

    def backward(self, g):
        # dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) over the normalized dims.
        need_x, need_w, need_b = self.needs_input_grad  # one flag per input: x, w, b (None: False)
        xhat, axes = self.xhat, self.axes
        lead = tuple(range(g.ndim - len(axes)))  # the sample dims, summed for dw and db
        dxhat = g * self.w if self.w is not None else g
        dx = None
        if need_x:
            dx = self.invstd * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                                - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
        dw = (g * xhat).sum(axis=lead) if need_w else None
        db = g.sum(axis=lead) if need_b else None
        return dx, dw, db


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise each sample over its trailing dims `normalized_shape` to mean 0, variance 1, then
    scale by weight and shift by bias (both of shape normalized_shape, or None)."""
    _validate.tensor_arg("layer_norm", "input", input)
    shape = _validate.normalized_shape_arg("layer_norm", normalized_shape)
    k = len(shape)
    if input.shape[input.ndim - k:] != shape or input.ndim < k:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end with normalized_shape {shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            _validate.tensor_arg("layer_norm", name, t)
            if t.shape != shape:
                raise ValueError(f"layer_norm: argument '{name}' must have shape {shape} (normalized_shape), "
                                 f"got {t.shape}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"layer_norm: argument 'eps' must be a finite number > 0, got {eps!r}")
    return dispatch.call(LayerNorm, input, weight, bias, k=k, eps=float(eps))
