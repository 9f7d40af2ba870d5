"""ReLU and the fused residual add + ReLU of ResNet blocks."""
from __future__ import annotations

from .. import _validate
from ..autograd import Function
from ..backend import get_array_module


class ReLU(Function):
    name = "relu"

    def forward(self, x):
        out = get_array_module(x).maximum(x, 0)  # NOTE: maximum propagates NaN, as PyTorch does
        self.mask = out > 0  # one byte per element, cheaper to keep than the output
        return out

    def backward(self, g):
        return g * self.mask


class AddReLU(Function):
    name = "add_relu"

    def forward(self, x, y):
        out = x + y
        get_array_module(out).maximum(out, 0, out=out)  # in place: no second full-size buffer
        self.mask = out > 0
        return out

    def backward(self, g):
        # The sum passes the same gradient to both inputs; the graph walk never writes into it.
        d = g * self.mask
        return (d if self.needs_input_grad[0] else None), (d if self.needs_input_grad[1] else None)


def relu(x):
    """max(x, 0) elementwise."""
    _validate.tensor_arg("relu", "input", x, floating=False)
    return ReLU.apply(x)


def add_relu(x, y):
    """relu(x + y) in one pass, for the residual connection of a ResNet block; shapes must match."""
    _validate.tensor_arg("add_relu", "x", x, floating=False)
    _validate.tensor_arg("add_relu", "y", y, floating=False)
    if x.shape != y.shape:
        raise ValueError(f"add_relu: 'x' and 'y' must have the same shape (no broadcasting), "
                         f"got {x.shape} and {y.shape}")
    _validate.same_device("add_relu", x=x, y=y)
    _validate.same_dtype("add_relu", x=x, y=y)
    return AddReLU.apply(x, y)
