"""Hypothesis strategies for gradient-checking layers: bounded arrays, tensors, valid conv/pool configs.

Needs the `test` extra (hypothesis). Typical use:

    @given(cfg=conv_configs(), data=st.data())
    def test_my_conv(cfg, data):
        x = data.draw(tensors(cfg.input_shape))
        ...
        mr.gradcheck(lambda x: my_layer(x), [x])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # pragma: no cover - exercised only without the test extra
    raise ImportError("minires.testing needs hypothesis: pip install 'minires[test]'") from exc

from .tensor import Tensor
from .backend import to_device


def _out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvConfig:
    """One valid conv2d configuration (output height and width are at least 1)."""

    N: int
    C_in: int
    C_out: int
    H: int
    W: int
    KH: int
    KW: int
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    bias: bool

    @property
    def input_shape(self):
        """(N, C_in, H, W)."""
        return (self.N, self.C_in, self.H, self.W)

    @property
    def weight_shape(self):
        """(C_out, C_in // groups, KH, KW)."""
        return (self.C_out, self.C_in // self.groups, self.KH, self.KW)

    @property
    def output_shape(self):
        """(N, C_out, OH, OW) by PyTorch's formula."""
        return (self.N, self.C_out,
                _out(self.H, self.KH, self.stride[0], self.padding[0], self.dilation[0]),
                _out(self.W, self.KW, self.stride[1], self.padding[1], self.dilation[1]))

    def kwargs(self):
        """stride, padding, dilation, groups as keyword arguments for F.conv2d."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


@dataclass(frozen=True)
class PoolConfig:
    """One valid pooling configuration (padding <= kernel/2, output at least 1x1)."""

    N: int
    C: int
    H: int
    W: int
    kernel_size: tuple
    stride: tuple
    padding: tuple

    @property
    def input_shape(self):
        """(N, C, H, W)."""
        return (self.N, self.C, self.H, self.W)

    @property
    def output_shape(self):
        """(N, C, OH, OW) by PyTorch's formula."""
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        return (self.N, self.C, _out(self.H, KH, SH, PH, 1), _out(self.W, KW, SW, PW, 1))

    def kwargs(self):
        """kernel_size, stride, padding as keyword arguments for F.max_pool2d / F.avg_pool2d."""
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding)


def shapes(min_dims: int = 1, max_dims: int = 4, min_side: int = 1, max_side: int = 5):
    """Array shapes with bounded rank and side lengths."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(shape, dtype=np.float64, min_value: float = -2.0, max_value: float = 2.0):
    """NumPy arrays of `shape` (a tuple or a strategy) with finite elements in [min_value, max_value]."""
    dtype = np.dtype(dtype)
    elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False,
                         width=8 * dtype.itemsize)
    return hnp.arrays(dtype, shape, elements=elements)


def tensors(shape=None, dtype=np.float64, min_value: float = -2.0, max_value: float = 2.0,
            requires_grad: bool = True, device: str = "cpu"):
    """Tensors with bounded elements; shape defaults to a bounded random shape (rank 1-4, sides 1-5)."""
    shape = shapes() if shape is None else shape
    return arrays(shape, dtype, min_value, max_value).map(
        lambda a: Tensor(to_device(a, device), requires_grad=requires_grad))


@st.composite
def away_from_zero(draw, shape, margin: float = 0.1, max_value: float = 2.0, dtype=np.float64):
    """Arrays with margin <= |x| <= max_value, so finite differences never cross a ReLU/abs kink."""
    mags = draw(arrays(shape, dtype, margin, max_value))
    signs = draw(hnp.arrays(np.bool_, mags.shape))
    return np.where(signs, mags, -mags).astype(dtype)


@st.composite
def distinct_arrays(draw, shape, margin: float = 0.1, dtype=np.float64):
    """Arrays whose values are pairwise >= margin apart (a shuffled, scaled, shifted grid): no max-pool ties."""
    shape = draw(shape) if isinstance(shape, st.SearchStrategy) else tuple(shape)
    size = int(np.prod(shape))
    order = draw(st.permutations(range(size)))
    gap = draw(st.floats(margin, 2 * margin))
    shift = draw(st.floats(-1.0, 1.0))
    values = (np.asarray(order, dtype=np.float64) - size / 2) * gap + shift
    return values.reshape(shape).astype(dtype)


@st.composite
def conv_configs(draw, max_batch: int = 2, max_channels: int = 4, max_size: int = 7, max_kernel: int = 3,
                 max_stride: int = 2, max_padding: int = 2, max_dilation: int = 2, max_groups: int = 2):
    """Valid conv2d configurations: any strides/paddings/dilations/groups, output size always >= 1."""
    G = draw(st.integers(1, max_groups))
    C_in = G * draw(st.integers(1, max(1, max_channels // G)))
    C_out = G * draw(st.integers(1, max(1, max_channels // G)))
    KH, KW = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    padding = (draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding)))
    dilation = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    # The smallest input the dilated kernel fits in once padded; the output is then >= 1.
    min_h = max(1, dilation[0] * (KH - 1) + 1 - 2 * padding[0])
    min_w = max(1, dilation[1] * (KW - 1) + 1 - 2 * padding[1])
    H = draw(st.integers(min_h, max(min_h, max_size)))
    W = draw(st.integers(min_w, max(min_w, max_size)))
    return ConvConfig(N=draw(st.integers(1, max_batch)), C_in=C_in, C_out=C_out, H=H, W=W, KH=KH, KW=KW,
                      stride=stride, padding=padding, dilation=dilation, groups=G, bias=draw(st.booleans()))


@st.composite
def pool_configs(draw, max_batch: int = 2, max_channels: int = 3, max_size: int = 8, max_kernel: int = 3,
                 max_stride: int = 3):
    """Valid pooling configurations: padding <= kernel/2 (PyTorch's rule), output size always >= 1."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    min_h, min_w = max(1, kernel[0] - 2 * padding[0]), max(1, kernel[1] - 2 * padding[1])
    H = draw(st.integers(min_h, max(min_h, max_size)))
    W = draw(st.integers(min_w, max(min_w, max_size)))
    return PoolConfig(N=draw(st.integers(1, max_batch)), C=draw(st.integers(1, max_channels)), H=H, W=W,
                      kernel_size=kernel, stride=stride, padding=padding)


__all__ = ["ConvConfig", "PoolConfig", "shapes", "arrays", "tensors", "away_from_zero", "distinct_arrays",
           "conv_configs", "pool_configs"]
