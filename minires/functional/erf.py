"""erf and erfc on raw NumPy/CuPy arrays, for gelu (NumPy has no erf and minires does not need SciPy).

W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev approximations for the error
function", Math. Comp. 23 (1969) 631-638; the coefficients of his SPECFUN routine CALERF), on three
ranges of |x|:
    |x| <= 0.46875:      erf(x)  = x * A(x^2) / B(x^2)
    0.46875 < |x| <= 4:  erfc(x) = exp(-x^2) * C(x) / D(x)
    |x| > 4:             erfc(x) = exp(-x^2) / x * (1/sqrt(pi) + R(1/x^2) / (x^2 S(1/x^2)))
Relative error below 1e-15 in float64. NOTE: evaluated in float64 whatever the input dtype and
rounded once at the end, so float32 results are within half an ulp or so (evaluated in float32 they
were off by up to 2.5 ulp); Abramowitz-Stegun 7.1.26 (error 1.5e-7) would not be accurate enough.
Every range is evaluated on the whole array, its argument clipped into the range (no overflow
warnings), and the right one picked per element.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module

_THRESH = 0.46875
_SQRPI = 5.6418958354775628695e-1  # 1 / sqrt(pi)
# Numerator coefficients ascend to the last but one, which is the constant term (CALERF's order).
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
      1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
      8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
      2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
      3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
      6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
      2.33520497626869185e-3)


def _ratio(t, num, den):
    """CALERF's Horner loop: (num[-1] t^k + ... + num[-2]) / (t^k + ... + den[-1]), k = len(den)."""
    xnum, xden = num[-1] * t, t
    for a, b in zip(num[:-2], den[:-1]):
        xnum = (xnum + a) * t
        xden = (xden + b) * t
    return (xnum + num[-2]) / (xden + den[-1])


def _exp_neg_square(xp, y):
    """exp(-y^2), with y^2 split as ysq^2 + del (ysq = y rounded down to 1/16) to keep its rounding error out."""
    ysq = xp.trunc(y * 16) / 16
    return xp.exp(-ysq * ysq) * xp.exp(-(y - ysq) * (y + ysq))


def _erf_small_erfc_large(x):
    """(erf(|x|) for |x| <= 0.46875 and erfc(|x|) above, which of the two each element is)."""
    xp = get_array_module(x)
    y = xp.abs(x)
    small = y <= _THRESH
    y1 = xp.minimum(y, _THRESH)
    erf_small = y1 * _ratio(y1 * y1, _A, _B)
    y2 = xp.clip(y, _THRESH, 4.0)
    erfc_mid = _exp_neg_square(xp, y2) * _ratio(y2, _C, _D)
    # NOTE: erfc(27) ~ 5e-319 is below float64's smallest normal number. The clip keeps 1/y^2 and
    # y - trunc(y) finite for y = inf; NaN compares False with everything, lands here and stays NaN.
    y3 = xp.clip(y, 4.0, 27.0)
    t = 1 / (y3 * y3)
    erfc_large = _exp_neg_square(xp, y3) * (_SQRPI - t * _ratio(t, _P, _Q)) / y3
    erfc_large = xp.where(y > 27.0, 0.0, erfc_large)  # erfc(27) = 5e-319 is the clip's value; beyond, 0
    return xp.where(small, erf_small, xp.where(y <= 4.0, erfc_mid, erfc_large)), small


def _out_dtype(x):
    """The result dtype: x's floating dtype, float32 for integers (as torch.erf)."""
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)


def erf(x):
    """The error function, elementwise, by Cody's rational approximation (see module docstring)."""
    xp = get_array_module(x)
    x64 = x.astype(np.float64, copy=False)
    r, small = _erf_small_erfc_large(x64)
    r = xp.where(small, r, 1 - r)  # erf(|x|)
    return xp.where(x64 < 0, -r, r).astype(_out_dtype(x), copy=False)


def erfc(x):
    """1 - erf(x), elementwise, without the cancellation of 1 - erf for large x."""
    xp = get_array_module(x)
    x64 = x.astype(np.float64, copy=False)
    r, small = _erf_small_erfc_large(x64)
    pos = xp.where(small, 1 - r, r)  # erfc(|x|)
    neg = xp.where(small, 1 + r, 2 - r)  # erfc(-|x|) = 2 - erfc(|x|) = 1 + erf(|x|)
    return xp.where(x64 < 0, neg, pos).astype(_out_dtype(x), copy=False)
