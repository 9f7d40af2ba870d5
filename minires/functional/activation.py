"""ReLU and the fused residual add + ReLU of ResNet blocks."""
from __future__ import annotations

from .. import _validate
from ..tensor import Function
from ..backend import get_array_module
from ..parallel import batch_parts
from .. import cuda
from ..cuda import ops as cuda_ops


class ReLU(Function):
    name = "relu"

    def forward(self, x):
        xp = get_array_module(x)
        out, self.mask = xp.empty_like(x), xp.empty_like(x, dtype=bool)  # both laid out like x

        def part(i):
            xp.maximum(x[i], 0, out=out[i])  # NOTE: maximum propagates NaN, as PyTorch does
            xp.greater(out[i], 0, out=self.mask[i])  # one byte per element, cheaper to keep than out
        batch_parts(xp, x, part)
        return out

    def backward(self, g):
        return _masked(g, self.mask)


def _masked(g, mask):
    """g * mask, over batch blocks in parallel on the CPU."""
    xp = get_array_module(g)
    if cuda.enabled(xp, g.dtype):
        d = cuda_ops.mask_grad(cuda.launcher(), xp, g, mask)
        if d is not None:  # None: g laid out unlike the mask; the generic code below handles it
            return d
    d = xp.empty_like(g)
    batch_parts(xp, g, lambda i: xp.multiply(g[i], mask[i], out=d[i]))
    return d


class AddReLU(Function):
    name = "add_relu"

    def forward(self, x, y):
        xp = get_array_module(x)
        if cuda.enabled(xp, x.dtype) and x.dtype == y.dtype:  # one fused pass when x and y are laid out alike
            fused = cuda_ops.add_relu(cuda.launcher(), xp, x, y)
            if fused is not None:
                out, self.mask = fused
                return out
        out, self.mask = xp.empty_like(x), xp.empty_like(x, dtype=bool)

        def part(i):
            xp.add(x[i], y[i], out=out[i])
            xp.maximum(out[i], 0, out=out[i])  # in place: no second full-size buffer
            xp.greater(out[i], 0, out=self.mask[i])
        batch_parts(xp, x, part)
        return out

    def backward(self, g):
        # The sum passes the same gradient to both inputs; the graph walk never writes into it.
        d = _masked(g, self.mask)
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
