"""pad: constant, reflect, replicate and circular padding of the trailing dims, in torch's pad order."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _validate, dispatch
from ..backend import get_array_module
from ..tensor import Function

_MODES = ("constant", "reflect", "replicate", "circular")


def _along(ndim: int, axis: int, s: slice) -> tuple:
    """Index tuple selecting `s` on `axis` and everything on the other axes."""
    return (slice(None),) * axis + (s,) + (slice(None),) * (ndim - axis - 1)


def _edges(xp, x, axis, left, right, mode):
    """The (left, right) blocks that `mode` puts before and after x along axis."""
    L, at = x.shape[axis], lambda start, stop: x[_along(x.ndim, axis, slice(start, stop))]
    if mode == "reflect":  # x[left], ..., x[1] | x | x[L-2], ..., x[L-1-right]: the edge not repeated
        return xp.flip(at(1, left + 1), axis), xp.flip(at(L - 1 - right, L - 1), axis)
    if mode == "replicate":
        return xp.repeat(at(0, 1), left, axis=axis), xp.repeat(at(L - 1, L), right, axis=axis)
    return at(L - left, L), at(0, right)  # circular: wrap around


def _edges_backward(xp, g, axis, left, right, mode):
    """The gradient of x (length L on axis) from g (length left + L + right), adding back each edge block."""
    Lout = g.shape[axis]
    L = Lout - left - right
    at = lambda start, stop: _along(g.ndim, axis, slice(start, stop))  # noqa: E731
    gl, gr = g[at(0, left)], g[at(Lout - right, Lout)]
    dx = g[at(left, left + L)].copy()
    if mode == "reflect":
        dx[at(1, left + 1)] += xp.flip(gl, axis)
        dx[at(L - 1 - right, L - 1)] += xp.flip(gr, axis)
    elif mode == "replicate":
        dx[at(0, 1)] += gl.sum(axis=axis, keepdims=True)
        dx[at(L - 1, L)] += gr.sum(axis=axis, keepdims=True)
    else:  # circular
        dx[at(L - left, L)] += gl
        dx[at(0, right)] += gr
    return dx


class Pad(Function):
    name = "pad"
    input_names = ("input",)

    def forward(self, x, pads=(), mode="constant", value=0.0):
        # pads: ((axis, left, right), ...) for the padded axes, the last axis first (torch's order)
        xp = get_array_module(x)
        self.pads, self.mode = pads, mode
        if mode == "constant":
            shape, inner = list(x.shape), [slice(None)] * x.ndim
            for axis, left, right in pads:
                shape[axis] += left + right
                inner[axis] = slice(left, left + x.shape[axis])
            self.inner = tuple(inner)  # where x sits in the output
            out = xp.full(tuple(shape), value, dtype=x.dtype)
            out[self.inner] = x
            return out
        for axis, left, right in pads:  # one axis at a time: corners come from the already padded axes
            lo, hi = _edges(xp, x, axis, left, right, mode)
            x = xp.concatenate([lo, x, hi], axis=axis)
        return x

    def backward(self, g):
        xp = get_array_module(g)
        if self.mode == "constant":
            return g[self.inner].copy()
        for axis, left, right in reversed(self.pads):
            g = _edges_backward(xp, g, axis, left, right, self.mode)
        return g


def pad(input, pad, mode: str = "constant", value=None):
    """Pad the trailing dims of input: pad = (left_last, right_last, left_2nd_last, right_2nd_last, ...).

    mode 'constant' (fill `value`, default 0) pads any number of dims; 'reflect' (mirror without the
    edge, each pad < the dim), 'replicate' (repeat the edge) and 'circular' (wrap, each pad <= the dim)
    pad the last 1-3 dims of an input with at least one more (batch or channel) dim, as PyTorch.
    Negative (cropping) pads are not supported.
    """
    _validate.tensor_arg("pad", "input", input, floating=False)
    if not isinstance(pad, (tuple, list)) or any(
            isinstance(p, (bool, np.bool_)) or not isinstance(p, (numbers.Integral, np.integer)) for p in pad):
        raise TypeError(f"pad: argument 'pad' must be a tuple of ints, got {pad!r}")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: argument 'pad' must have an even length of at most 2 * input.ndim, got {tuple(pad)} "
                         f"for input of shape {input.shape}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding is not supported, got {tuple(pad)}")
    if mode not in _MODES:
        raise ValueError(f"pad: argument 'mode' must be one of {_MODES}, got {mode!r}")
    k = len(pad) // 2
    pads = tuple((input.ndim - 1 - i, int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(k))
    if mode != "constant":
        if value is not None and value != 0:
            raise ValueError(f"pad: argument 'value' only applies to mode 'constant', got mode {mode!r}")
        if not 1 <= k <= 3 or input.ndim < k + 1:
            raise ValueError(f"pad: mode {mode!r} pads the last 1 to 3 dims of an input with at least one more "
                             f"dim, got pad {tuple(pad)} for input of shape {input.shape}")
        for axis, left, right in pads:
            size, limit = input.shape[axis], input.shape[axis] - (mode == "reflect")
            if max(left, right) > limit or (size == 0 and left + right):
                raise ValueError(f"pad: mode {mode!r} needs each pad {'<' if mode == 'reflect' else '<='} the "
                                 f"padded dim, got pad ({left}, {right}) for dim {axis} of input of shape "
                                 f"{input.shape}")
        return dispatch.call(Pad, input, pads=pads, mode=mode)
    value = 0 if value is None else value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"pad: argument 'value' must be a real number, got {value!r}")
    return dispatch.call(Pad, input, pads=pads, mode=mode, value=value)
