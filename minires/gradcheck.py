"""Finite-difference gradient checking in float64, full or along random directions."""
from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_numpy
from .tensor import Tensor, no_grad


FAST_DIRECTIONS = 3  # random directions per input in fast mode (two evaluations each)


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with finite differences."""


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    outs = tuple(o for o in outs if isinstance(o, Tensor))
    if not outs:
        raise TypeError("gradcheck: fn must return a Tensor or a tuple of Tensors")
    return outs


def _projected(fn, inputs, weights) -> float:
    """sum_k <fn(inputs)[k], weights[k]>, the scalar whose gradient is J^T v."""
    with no_grad():
        outs = _outputs(fn, inputs)
    return float(sum(float((o.array.astype(np.float64) * w).sum()) for o, w in zip(outs, weights)))


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool = False, seed: int = 0) -> bool:
    """Compare the autograd gradients of `fn(*inputs)` with central differences in float64.

    Every Tensor input with requires_grad=True is checked; it must be float64. The outputs are
    projected on a fixed random vector v, so the check covers J^T v for the whole Jacobian J.
    fast_mode checks each input along FAST_DIRECTIONS random directions (two evaluations each).
    Returns True or raises GradcheckError naming the input, the worst element and both values (for
    one scalar output, its derivatives as computed by hand; in fast_mode, directional derivatives).
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable, got {type(fn).__name__}")
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64 for finite differences, got {inputs[i].dtype}")
    rng = np.random.default_rng(seed)

    # Analytic: backward of <out, v>.
    outs = _outputs(fn, inputs)
    weights = []
    for o in outs:
        xp = get_array_module(o.array)
        weights.append(xp.asarray(rng.standard_normal(o.shape)))
    for i in checked:
        inputs[i].grad = None
    total = None
    for o, w in zip(outs, weights):
        if not o.requires_grad:
            continue
        term = (o * Tensor(w.astype(o.dtype))).sum()
        total = term if total is None else total + term
    if total is None:
        raise GradcheckError("gradcheck: no output depends on an input that requires grad")
    total.backward()
    # NOTE: one scalar output: its values divided by v are the derivatives a user computes by hand
    scale = float(to_numpy(weights[0]).reshape(-1)[0]) if len(outs) == 1 and outs[0].numel() == 1 else None
    of = "the output" if scale is not None else "sum(output * v) (v: fixed random weights)"
    analytic = {}
    for i in checked:
        g = inputs[i].grad
        analytic[i] = np.zeros(inputs[i].shape) if g is None else to_numpy(g.array).astype(np.float64)
        inputs[i].grad = None

    for i in checked:
        x = inputs[i]
        original = x.array.copy()
        try:
            if fast_mode:
                xp = get_array_module(x.array)
                # NOTE: several directions: one alone can hide a wrong element whose error is
                # small against the sum, or cancel against another.
                for d in range(FAST_DIRECTIONS):
                    u = rng.standard_normal(x.shape)
                    x.array = original + xp.asarray(eps * u)
                    plus = _projected(fn, inputs, weights)
                    x.array = original - xp.asarray(eps * u)
                    minus = _projected(fn, inputs, weights)
                    numeric = (plus - minus) / (2 * eps)
                    exact = float((analytic[i] * u).sum())
                    if not abs(numeric - exact) <= atol + rtol * abs(numeric):  # False for NaN too
                        n, a = (numeric / scale, exact / scale) if scale else (numeric, exact)
                        raise GradcheckError(
                            f"gradcheck: input {i} (shape {x.shape}), fast_mode: along random direction {d + 1} of "
                            f"{FAST_DIRECTIONS}, the derivative of {of} is numeric {n:.8g} vs analytic {a:.8g}. These "
                            f"are directional derivatives (the sum of the gradient times a random direction u), not "
                            f"per-element values: gradcheck(..., fast_mode=False) checks each element and names the "
                            f"worst one with its own numeric and analytic derivative")
                continue
            numeric = np.zeros(x.shape)
            x.array = original.copy()
            flat = x.array.reshape(-1)  # a view: writing it perturbs x
            for k in range(flat.size):
                old = flat[k].item()
                flat[k] = old + eps
                plus = _projected(fn, inputs, weights)
                flat[k] = old - eps
                minus = _projected(fn, inputs, weights)
                flat[k] = old
                numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
            err = np.abs(numeric - analytic[i]) - (atol + rtol * np.abs(numeric))
            bad = ~(err <= 0)  # NOTE: NaN in either gradient counts as a failure, not a pass
            if bad.any():
                k = np.unravel_index(int(np.argmax(np.where(np.isnan(err), np.inf, err))), x.shape)
                n, a = (numeric[k] / scale, analytic[i][k] / scale) if scale else (numeric[k], analytic[i][k])
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {x.shape}) element {tuple(int(j) for j in k)}: the derivative "
                    f"of {of} by this element is numeric {n:.8g} vs analytic {a:.8g} "
                    f"({int(bad.sum())} of {err.size} elements out of tolerance)")
        finally:
            x.array = original
    return True
