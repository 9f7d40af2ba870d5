"""Conv2d layer over F.conv2d."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._validate import pair
from . import functional as nnF
from . import init
from .module import Module
from .parameter import weight_and_bias


def _as_pair(v):
    """v as (v, v) if it is a single value, else as a tuple (unchecked: F.conv2d checks it)."""
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Conv2d(Module):
    """2-D convolution over NCHW input; weight (out_channels, in_channels // groups, KH, KW)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)  # F.conv2d sees only the weight's shape
        # stride, padding and dilation are checked by F.conv2d at each call; stored as pairs like PyTorch's
        self.stride, self.padding, self.dilation = (_as_pair(v) for v in (stride, padding, dilation))
        if isinstance(padding, str):  # 'same' / 'valid', as PyTorch's; nn.functional.conv2d resolves them
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' is not supported for strided convolutions "
                                 f"(stride={stride!r})")
            self.padding = padding
        weight_and_bias(self, (out_channels, in_channels // groups) + self.kernel_size, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation (init.default_reset_)."""
        init.default_reset_(self.weight, self.bias)

    def forward(self, x):
        conv = nnF.conv2d if isinstance(self.padding, str) else F.conv2d
        return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
