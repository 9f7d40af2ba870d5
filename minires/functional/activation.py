"""ReLU and the fused residual add + ReLU of ResNet blocks: the reference implementations."""
from __future__ import annotations

from .. import _validate, dispatch
from ..backend import get_array_module
from ..tensor import Function


class ReLU(Function):
    """out = max(x, 0); the gradient passes where out > 0 (0 at the kink, as PyTorch)."""

    name = "relu"
    input_names = ("input",)

    def forward(self, x):
        out = get_array_module(x).maximum(x, 0)  # NOTE: maximum propagates NaN, as PyTorch does
        self.mask = out > 0  # one byte per element, cheaper to keep than out
        return out

    def backward(self, g):
        return g * self.mask


class AddReLU(Function):
    """out = max(x + y, 0); both inputs get the gradient where out > 0."""

    name = "add_relu"
    input_names = ("x", "y")

    def forward(self, x, y):
        out = get_array_module(x).maximum(x + y, 0)
        self.mask = out > 0
        return out

    def backward(self, g):
        # The sum passes the same gradient to both inputs; the graph walk never writes into it.
        d = g * self.mask
        return (d if self.needs_input_grad[0] else None), (d if self.needs_input_grad[1] else None)


def relu(x):
    """max(x, 0) elementwise."""
    _validate.tensor_arg("relu", "input", x, floating=False)
    return dispatch.call(ReLU, x)


def add_relu(x, y):
    """relu(x + y) in one pass, for the residual connection of a ResNet block; shapes and dtypes must match."""
    # At least 1-D: NumPy turns the sum of two 0-d arrays into a scalar (PyTorch has no public add_relu).
    _validate.tensor_arg("add_relu", "x", x, floating=False, min_ndim=1)
    _validate.tensor_arg("add_relu", "y", y, floating=False, min_ndim=1)
    if x.shape != y.shape:
        raise ValueError(f"add_relu: 'x' and 'y' must have the same shape (no broadcasting), "
                         f"got {x.shape} and {y.shape}")
    if x.dtype != y.dtype:  # no type promotion either (Function.apply compares floating dtypes only)
        raise TypeError(f"add_relu: 'x' and 'y' must share one dtype, got {x.dtype} and {y.dtype}")
    return dispatch.call(AddReLU, x, y)


__all__ = ["relu", "add_relu", "ReLU", "AddReLU"]
