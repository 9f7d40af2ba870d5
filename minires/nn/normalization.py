"""LayerNorm over F.layer_norm, GroupNorm over nn.functional.group_norm."""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from ..functional.layernorm import normalized_shape_arg
from .functional import group_norm
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


class GroupNorm(Module):
    """Normalise each sample over groups of num_channels/num_groups channels, then a per-channel affine map."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        xp = backend.xp_for(device or "cpu")
        dtype = np.dtype(dtype or np.float32)
        if affine:
            self.weight = Parameter(xp.ones(num_channels, dtype=dtype))
            self.bias = Parameter(xp.zeros(num_channels, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
