"""Pooling layers over F.max_pool2d / avg_pool2d / adaptive_avg_pool2d."""
from __future__ import annotations

from .. import functional as F
from . import functional as nnF
from .module import Module


class _Pool2d(Module):
    """Shared arguments of the windowed pools; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over KH x KW windows; stride defaults to kernel_size (PyTorch's signature: dilation, return_indices
    and ceil_mode other than their defaults are a NotImplementedError naming them)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        nnF._unsupported("MaxPool2d", dilation=(dilation, 1), return_indices=(return_indices, False),
                         ceil_mode=(ceil_mode, False))
        super().__init__(kernel_size, stride, padding)

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Mean over KH x KW windows (zero padding counted); stride defaults to kernel_size (PyTorch's signature:
    ceil_mode, count_include_pad and divisor_override other than their defaults are a NotImplementedError)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        nnF._unsupported("AvgPool2d", ceil_mode=(ceil_mode, False), count_include_pad=(count_include_pad, True),
                         divisor_override=(divisor_override, None))
        super().__init__(kernel_size, stride, padding)

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """Mean pooling to a fixed output size (1 gives global average pooling)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
