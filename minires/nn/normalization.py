"""LayerNorm layer over F.layer_norm."""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from ..functional.layernorm import normalized_shape_arg
from .module import Module
from .parameter import Parameter


class LayerNorm(Module):
    """Normalise each sample over its trailing dims `normalized_shape`, then an elementwise affine map."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.normalized_shape = normalized_shape_arg("LayerNorm", normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        xp = backend.xp_for(device or "cpu")
        dtype = np.dtype(dtype or np.float32)
        if elementwise_affine:
            self.weight = Parameter(xp.ones(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = Parameter(xp.zeros(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            self.weight.array[...] = 1
        if self.bias is not None:
            self.bias.array[...] = 0

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
