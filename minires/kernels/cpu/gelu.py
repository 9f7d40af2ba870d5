"""CPU fast path of the exact gelu in float32: Phi by piecewise-cubic Hermite interpolation, over the cores.

The normal CDF Phi is tabulated on [-8, 8] in steps of h = 1/32 (knot values from the reference's
erfc, slopes phi(x) in closed form); between knots x0 and x0 + h, with s = x - x0 (exact in float32),
    Phi(x) ~ Phi(x0) + s (phi(x0) + s (c2 + s c3))        (the cubic Hermite interpolant)
whose error is below h^4 / 384 * max|Phi''''| ~ 1.4e-9. The correction term is small, so float32
evaluation adds little to the rounding of the table's Phi(x0): measured against math.erfc, Phi is
within 1e-7 of the truth everywhere (tests/ops/test_gelu_fast.py). Near and beyond +-8 Phi is taken as 0
or 1 (Phi(-8) = 6e-16), flat, so that gelu(+-inf) and its gradient are NaN, as the
reference's inf * 0. About 26 float32 NumPy calls per piece of 2**15 values (4 of them gathers), on
scratch reused piece after piece, instead of the reference's ~50 float64 passes. The forward keeps
gelu's derivative Phi(x) + x phi(x) for the backward (phi from the cubic's slope), whose backward is
then one multiply. NOTE (benchmarks/bench_passes.py, batch 256, in turns, 2-vCPU EPYC): the forward
of the 7 GELUs of an airbench94 step took 0.80x the time of the previous version of this file
(int32 indices in mode "raise", fresh temporaries): 193 -> 155 ms. float64 input takes the reference
(functional/elementwise.py: GELU), which stays the definition this path is tested against.

NOTE: numexpr (optional, one pass per expression, no erf) does not pay here: Phi through Abramowitz and
Stegun's 7.1.26 (exp times a polynomial in 1/(1 + p|x|)) ran at 38 ns per value in float32 (61 in
float64) against 10.6 for this file's NumPy path on 2 threads (3.7M values), and its error (up to
1.5e-7 in erf) leaves Phi outside the 1e-7 the tests demand by 5e-8 even in float64.
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


_TOP = np.nextafter(np.float32(-_LO), np.float32(0))  # the largest float32 below 8: x clips into the last interval


class _Scratch:
    """Per-thread float32 temporaries of one piece (_CHUNK values), reused piece after piece.

    NOTE: measured alone against fresh temporaries per piece: 1.01x (with the Trainer's
    keep_freed_memory) and 1.05x (without) the time, within the noise; kept for its steady memory.
    Pieces of 2**14, 2**13, 2**12 values ran 1.15x, 1.39x, 1.93x slower (NumPy's per-call cost);
    2**16 as fast as 2**15 (0.97x)."""

    def __init__(self):
        self.f = [np.empty(_CHUNK, np.float32) for _ in range(7)]
        self.i32, self.idx = np.empty(_CHUNK, np.int32), np.empty(_CHUNK, np.intp)


def _gelu_part(x, out, deriv, scratch):
    """out = x Phi(x) and deriv = Phi(x) + x phi(x) (float32 1-d arrays of at most _CHUNK values; deriv may be None)."""
    n = x.size
    xc, k, f0, d0, c2, c3, dphi = (b[:n] for b in scratch.f)
    i32, idx = scratch.i32[:n], scratch.idx[:n]
    np.clip(x, np.float32(_LO), _TOP, out=xc)  # NaN stays NaN
    np.multiply(xc, np.float32(_STEPS_PER_UNIT), out=k)  # exact (a power of 2)
    np.floor(k, out=k)  # knot number - 256, in [-256, 255]
    # NOTE: intp indices and mode="wrap": np.take converts int32 indices to intp itself and checks each
    # one in mode "raise"; int32 -> intp here and "wrap" took a gather from 2.4 to ~1.2 ns per value.
    # Indices from 0 up: "wrap" on negative ones ran 8x slower. (NaN casts to a negative garbage index:
    # wrapped into the table, its s stays NaN.)
    np.add(k, np.float32(-_LO * _STEPS_PER_UNIT), out=i32, casting="unsafe")
    np.copyto(idx, i32)
    s = k
    s *= np.float32(_H)  # x0, a multiple of 1/32: exact
    np.subtract(xc, s, out=s)  # s = x - x0 in [0, h), exact
    # NOTE: two 8-byte gathers of coefficient pairs (f0, d0) and (c3, c2), then strided columns, ran 1.07x
    # the time of these four 4-byte ones (the strided arithmetic costs more than the gathers saved).
    for table, coef in zip((_F0, _D0, _C2, _C3), (f0, d0, c2, c3)):
        np.take(table, idx, mode="wrap", out=coef)
    # The cubic f0 + s (d0 + s (c2 + s c3)) and its slope d0 + s (2 c2 + 3 s c3), sharing q = s c3 and
    # r = q + c2: two calls fewer than evaluating both apart (measured 0.95x-1.02x, within the noise).
    c3 *= s  # q
    c2 += c3  # r
    if deriv is not None:
        np.add(c2, c2, out=dphi)
        dphi += c3  # 2 r + q = 2 c2 + 3 s c3
        dphi *= s
        dphi += d0  # phi(x), the cubic's slope
    c2 *= s
    c2 += d0
    c2 *= s
    f0 += c2  # Phi(x)
    np.multiply(x, f0, out=out)
    if deriv is not None:
        np.multiply(x, dphi, out=dphi)
        np.add(f0, dphi, out=deriv)


class GELUCPU(elementwise.GELU):
    @classmethod
    def supports(cls, x, approximate="none"):
        return isinstance(x, np.ndarray) and approximate == "none" and x.ndim > 0 and x.dtype == np.float32

    def forward(self, x, approximate="none"):
        self.approximate = approximate
        flat = [x.ravel(order="K")]
        if not np.shares_memory(flat[0], x):  # x broadcast or strided: its ravel is a copy, in C order
            x = np.ascontiguousarray(x)  # NOTE: one copy, then the pieces below are views again
            flat = [x.ravel()]
        # NOTE: without a gradient to come (no_grad, evaluation) the derivative is not made: 7 of the
        # piece's 26 calls, and a full-size array, fewer: 0.85x the forward's CPU time (256x64x15x15, in turns).
        need = any(self.needs_input_grad) if self.needs_input_grad else True
        out = np.empty_like(x)  # laid out like x (dense: ravel(order="K") lists x, out and deriv
        self.deriv = np.empty_like(x) if need else None  # in one element order, as views)
        flat += [v.ravel(order="K") if v is not None else None for v in (out, self.deriv)]

        def part(a, b):  # pieces of _CHUNK elements: the float32 temporaries stay in the core's cache
            scratch = _Scratch()
            for c in range(a * _CHUNK, min(b * _CHUNK, x.size), _CHUNK):
                _gelu_part(*(v[c:c + _CHUNK] if v is not None else None for v in flat), scratch)
        parallel.split(part, -(-x.size // _CHUNK), item_size=_CHUNK)
        return out

    def backward(self, g):
        d = np.empty_like(g)
        parallel.split_rows(lambda a, b: np.multiply(g[a:b], self.deriv[a:b], out=d[a:b]), g)
        return d
