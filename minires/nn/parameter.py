"""Parameter: a leaf Tensor that a Module registers as trainable."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad and is registered by a Module when assigned as an attribute."""

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.zeros((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            data = data.array
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def weight_and_bias(module, weight_shape, bias: bool, device=None, dtype=None) -> None:
    """Register uninitialised `weight` (weight_shape) and `bias` (weight_shape[0],) or bias=None."""
    xp = backend.xp_for(device or "cpu")
    dtype = np.dtype(dtype or np.float32)
    module.weight = Parameter(xp.empty(tuple(weight_shape), dtype=dtype))
    if bias:
        module.bias = Parameter(xp.empty((weight_shape[0],), dtype=dtype))
    else:
        module.register_parameter("bias", None)
