"""The fast paths of each op, in the order they are tried: the one table minires.dispatch is given.

dispatch.call runs the first implementation whose `supports(*arrays, **params)` accepts the call, else
the op's reference Function (minires.functional). A CPU and a CUDA fast path never both accept one
call (NumPy vs CuPy arrays), so the order within a row only matters for reading. `install()` hands the
table to dispatch; `MINIRES_IMPL=reference` leaves it unused.
"""
from __future__ import annotations

from .. import dispatch
from .cpu.activation import AddReLUCPU, ClampCPU, ReLUCPU
from .cpu.batchnorm import BatchNormCPU
from .cpu.conv import Conv2dCPU
from .cpu.depthwise import DepthwiseConv2dCPU
from .cpu.gelu import GELUCPU
from .cpu.grouped import GroupedConv2dCPU
from .cpu.linear import LinearCPU
from .cpu.pooling import AdaptiveAvgPool2dCPU, AvgPool2dCPU, MaxPool2dCPU
from .cuda.activation import AddReLUCUDA, ReLUCUDA
from .cuda.batchnorm import BatchNormCUDA
from .cuda.conv import Conv2dCUDA
from .cuda.grouped import DepthwiseConv2dCUDA, GroupedConv2dCUDA
from .cuda.loss import CrossEntropyCUDA
from .cuda.pooling import AdaptiveAvgPool2dCUDA, MaxPool2dCUDA

FAST = {
    "conv2d": (DepthwiseConv2dCPU, GroupedConv2dCPU, Conv2dCPU, DepthwiseConv2dCUDA, GroupedConv2dCUDA, Conv2dCUDA),
    "linear": (LinearCPU,),
    "batch_norm": (BatchNormCPU, BatchNormCUDA),
    "relu": (ReLUCPU, ReLUCUDA),
    "add_relu": (AddReLUCPU, AddReLUCUDA),
    "clamp": (ClampCPU,),
    "gelu": (GELUCPU,),
    "max_pool2d": (MaxPool2dCPU, MaxPool2dCUDA),
    "avg_pool2d": (AvgPool2dCPU,),
    "adaptive_avg_pool2d": (AdaptiveAvgPool2dCPU, AdaptiveAvgPool2dCUDA),
    "cross_entropy": (CrossEntropyCUDA,),
}


def install() -> None:
    """Give dispatch the table above (replacing any earlier one; calling it twice is harmless)."""
    dispatch.install(FAST)


__all__ = ["FAST", "install"]
