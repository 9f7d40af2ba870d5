"""CPU fast path of the exact gelu in float32: Phi by piecewise-cubic Hermite interpolation, over the cores.

The normal CDF Phi is tabulated on [-8, 8] in steps of h = 1/32 (knot values from the reference's
erfc, slopes phi(x) in closed form); between knots x0 and x0 + h, with s = x - x0 (exact in float32),
    Phi(x) ~ Phi(x0) + s (phi(x0) + s (c2 + s c3))        (the cubic Hermite interpolant)
whose error is below h^4 / 384 * max|Phi''''| ~ 1.4e-9. The correction term is small, so float32
evaluation adds little to the rounding of the table's Phi(x0): measured against math.erfc, Phi is
within 1e-7 of the truth everywhere (tests/ops/test_gelu_fast.py). Near and beyond +-8 Phi is taken as 0
or 1 (Phi(-8) = 6e-16), flat, so that gelu(+-inf) and its gradient are NaN, as the
reference's inf * 0. About 25 float32 NumPy passes (4 of them gathers) instead of the reference's
~50 float64 ones: ~20-25 ns per value against ~245 measured for the reference (7 calls of an
airbench94 step at batch 1024: ~1.2 s against ~20 s). The forward keeps gelu's derivative
Phi(x) + x phi(x) for the backward (phi from the cubic's slope). float64 input takes the reference
(functional/elementwise.py: GELU), which stays the definition this path is tested against.
"""
from __future__ import annotations

import math

import numpy as np

from ... import parallel
from ...functional import elementwise
from ...functional.erf import erfc

_LO, _STEPS_PER_UNIT = -8.0, 32
_CHUNK = 1 << 15  # elements per piece: ~6 float32 temporaries of 128 KiB, and numpy calls long enough to
# leave the GIL to the other threads most of the time
_H = 1.0 / _STEPS_PER_UNIT
_KNOTS = np.arange(2 * 8 * _STEPS_PER_UNIT + 1, dtype=np.float64) * _H + _LO  # (513,): -8, -8 + h, ..., 8


def _table() -> np.ndarray:
    """(512, 4) float32: per interval, Phi(x0), phi(x0), c2, c3 of the cubic in s = x - x0."""
    f = 0.5 * erfc(-_KNOTS / math.sqrt(2))  # Phi at the knots (reference erfc, float64)
    d = np.exp(-0.5 * _KNOTS ** 2) / math.sqrt(2 * math.pi)  # phi at the knots
    slope = (f[1:] - f[:-1]) / _H
    c2 = (3 * slope - 2 * d[:-1] - d[1:]) / _H
    c3 = (d[:-1] + d[1:] - 2 * slope) / _H ** 2
    table = np.stack([f[:-1], d[:-1], c2, c3], axis=1)
    # The end intervals are flat, Phi = 0 and 1 (off by under 1e-15): x beyond them lands there, so that
    # x phi(x) is exactly 0 for finite x (x * a float32 rounding remainder would grow with x) and NaN at inf.
    table[0], table[-1] = (0.0, 0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)
    return table.astype(np.float32)


_COEF = _table()
_F0, _D0, _C2, _C3 = (np.ascontiguousarray(_COEF[:, j]) for j in range(4))


def _gelu_part(x, out, deriv):
    """out = x Phi(x) and deriv = Phi(x) + x phi(x) (float32 arrays of one shape)."""
    xc = np.clip(x, _LO, -_LO)  # NaN stays NaN
    k = (xc - np.float32(_LO)) * np.float32(_STEPS_PER_UNIT)
    np.floor(k, out=k)
    idx = k.astype(np.int32)  # (NaN gives garbage here, clipped below; s stays NaN)
    np.clip(idx, 0, len(_F0) - 1, out=idx)
    s = idx.astype(np.float32)
    s *= np.float32(_H)
    s += np.float32(_LO)  # x0, a multiple of 1/32: exact
    np.subtract(xc, s, out=s)  # s = x - x0 in [0, h], exact
    c3, c2, d0 = np.take(_C3, idx), np.take(_C2, idx), np.take(_D0, idx)
    dphi = c3 * np.float32(3)  # the cubic's slope: d0 + s (2 c2 + 3 s c3)
    dphi *= s
    dphi += c2
    dphi += c2
    dphi *= s
    dphi += d0
    c3 *= s  # the cubic: f0 + s (d0 + s (c2 + s c3))
    c3 += c2
    c3 *= s
    c3 += d0
    c3 *= s
    cdf = np.take(_F0, idx)
    cdf += c3  # Phi(x)
    np.multiply(x, cdf, out=out)
    np.multiply(x, dphi, out=dphi)
    np.add(cdf, dphi, out=deriv)


class GELUCPU(elementwise.GELU):
    @classmethod
    def supports(cls, x, approximate="none"):
        return isinstance(x, np.ndarray) and approximate == "none" and x.ndim > 0 and x.dtype == np.float32

    def forward(self, x, approximate="none"):
        self.approximate = approximate
        out, self.deriv = np.empty_like(x), np.empty_like(x)  # laid out like x
        flat = [v.ravel(order="K") for v in (x, out, self.deriv)]  # one element order for all three...
        # ...when all three are views; a copy (x broadcast or strided, say) may list them in another order
        if not all(np.shares_memory(f, v) for f, v in zip(flat, (x, out, self.deriv))):
            parallel.split_rows(lambda a, b: _gelu_part(x[a:b], out[a:b], self.deriv[a:b]), x)  # NOTE: no flat view
            return out

        def part(a, b):  # pieces of _CHUNK elements: the ~6 float32 temporaries stay in the core's cache
            for c in range(a * _CHUNK, min(b * _CHUNK, x.size), _CHUNK):
                _gelu_part(*(v[c:c + _CHUNK] for v in flat))
        parallel.split(part, -(-x.size // _CHUNK), item_size=_CHUNK)
        return out

    def backward(self, g):
        d = np.empty_like(g)
        parallel.split_rows(lambda a, b: np.multiply(g[a:b], self.deriv[a:b], out=d[a:b]), g)
        return d
