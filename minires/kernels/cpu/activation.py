"""CPU fast paths of relu, add_relu and clamp: in-place passes over blocks of the batch, in parallel.

Why not the reference (functional/activation.py, ops/arithmetic.py's Clamp): it runs each step as one
whole-array NumPy call on one core, its add_relu holds x + y as a second full-size array, and Clamp's
backward makes a ones array, two comparisons, their and, and a where. Here each block [a, b) of the
batch is written by one thread (parallel.split runs the blocks once per call), add_relu adds and
clamps in the output buffer, clamp keeps a one-byte mask of where x passed through, and outputs and
masks are laid out like x (conv outputs are NCHW views of channels-last memory).

NOTE: numexpr (optional) does not pay for relu: "where(x > 0, x, 0)" and "x > 0" over (3840, 960)
float32 took 45 ms wall / 20 ms CPU against 7.9 / 3.2 for the two NumPy calls per block here
(2-vCPU EPYC, in turns).
"""
from __future__ import annotations

import numpy as np

from ... import parallel
from ...functional import activation
from ...ops import arithmetic


def _masked(g, mask):
    """g * mask, written block by block into an array laid out like g."""
    d, like_g = np.empty_like(g), np.empty_like(g, dtype=bool)
    # NOTE: a float32 x bool product of arrays in two layouts (a C-order g after a channel shuffle or a
    # reshape, a channels-last mask) runs 6-11x slower than in one layout: NumPy casts the bools through a
    # buffer in the iteration order. The mask is then copied into g's layout first (bytes): 64x116x16x16,
    # 8.1 ms -> 1.2 ms (C-order g, channels-last mask); in one layout 0.73 ms as before.
    copy = like_g.strides != mask.strides

    def part(a, b):
        m = mask[a:b]
        if copy:
            np.copyto(like_g[a:b], m)
            m = like_g[a:b]
        np.multiply(g[a:b], m, out=d[a:b])
    parallel.split_rows(part, g)
    return d


class ReLUCPU(activation.ReLU):
    @classmethod
    def supports(cls, x):
        return isinstance(x, np.ndarray) and x.ndim > 0  # 0-d: nothing to split, the reference runs

    def forward(self, x):
        out, self.mask = np.empty_like(x), np.empty_like(x, dtype=bool)  # both laid out like x

        def part(a, b):
            np.maximum(x[a:b], 0, out=out[a:b])  # NOTE: maximum propagates NaN, as PyTorch does
            np.greater(out[a:b], 0, out=self.mask[a:b])  # one byte per element, cheaper to keep than out
        parallel.split_rows(part, x)
        return out

    def backward(self, g):
        return _masked(g, self.mask)


class AddReLUCPU(activation.AddReLU):
    @classmethod
    def supports(cls, x, y):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray)

    def forward(self, x, y):
        out, self.mask = np.empty_like(x), np.empty_like(x, dtype=bool)

        def part(a, b):
            np.add(x[a:b], y[a:b], out=out[a:b])
            np.maximum(out[a:b], 0, out=out[a:b])  # in place: no second full-size buffer
            np.greater(out[a:b], 0, out=self.mask[a:b])
        parallel.split_rows(part, x)
        return out

    def backward(self, g):
        d = _masked(g, self.mask)  # the same gradient to both inputs; the graph walk never writes into it
        return (d if self.needs_input_grad[0] else None), (d if self.needs_input_grad[1] else None)


class ClampCPU(arithmetic.Clamp):
    """clamp with number bounds (relu6 and hardtanh are clamp(x, 0, 6) and clamp(x, -1, 1))."""

    @classmethod
    def supports(cls, x, lo=None, hi=None):
        # Python numbers only: a NumPy scalar bound would promote the result's dtype (NEP 50), and
        # a NaN bound or lo > hi (the output is then hi everywhere) stay on the reference's rules.
        bounds = [v for v in (lo, hi) if v is not None]
        return (isinstance(x, np.ndarray) and x.ndim > 0 and x.dtype.kind == "f"
                and all(type(v) in (int, float) and v == v for v in bounds)
                and (lo is None or hi is None or lo <= hi))

    def forward(self, x, lo=None, hi=None):
        need = self.needs_input_grad[0] if self.needs_input_grad else True  # no mask under no_grad / eval
        out = np.empty_like(x)  # laid out like x, as the mask
        self.mask = np.empty_like(x, dtype=bool) if need else None

        def part(a, b):
            o = out[a:b]
            # NOTE: np.clip is one pass and propagates NaN, as PyTorch does; maximum then minimum took
            # 2.7x as long with the mask (32x96x32x32 float32 channels-last, 3.91 ms against 1.47).
            # It keeps a -0.0 at a bound of 0 where the reference's maximum gives +0.0: equal values.
            np.clip(x[a:b], lo, hi, out=o)
            if need:  # x passed through where the output equals it: lo <= x <= hi, both ends included as
                # PyTorch's gradient rule says (NaN equals nothing: no gradient, as the reference).
                np.equal(o, x[a:b], out=self.mask[a:b])
        parallel.split_rows(part, x)
        return out

    def backward(self, g):
        return (_masked(g, self.mask) if self.needs_input_grad[0] else None), None, None
