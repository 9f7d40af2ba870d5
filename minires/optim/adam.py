"""Adam and AdamW: bias-corrected Adam with L2 weight decay (Adam) or decoupled weight decay (AdamW)."""
from __future__ import annotations

import math
import numbers

from ..backend import get_array_module
from .optimizer import Optimizer, check_number


class Adam(Optimizer):
    """Adam: m, v moving averages of g and g*g; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    _scalar_state = ("step",)
    _decoupled_weight_decay = False  # Adam adds wd*p to the gradient; AdamW shrinks p itself

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _validate_group(self, group, from_defaults=False):
        name = type(self).__name__
        check_number(name, "lr", group["lr"], minimum=0.0)
        check_number(name, "eps", group["eps"], minimum=0.0)
        check_number(name, "weight_decay", group["weight_decay"], minimum=0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
                isinstance(b, numbers.Real) and not isinstance(b, bool) for b in betas):
            raise TypeError(f"{name}: argument 'betas' must be a pair of numbers, got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name}: invalid betas[{i}] {b!r} (must be in [0, 1))")
        group["betas"] = tuple(float(b) for b in betas)

    def _update(self, p, g, group, state):
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        x = p.array
        if not state:
            xp = get_array_module(x)
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(x)
            state["exp_avg_sq"] = xp.zeros_like(x)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(x)
        state["step"] += 1
        step = state["step"]
        if wd != 0:
            if self._decoupled_weight_decay:
                x *= 1.0 - lr * wd  # before the Adam step, as torch.optim.AdamW; the gradient is untouched
            else:
                g = g + wd * x
        xp = get_array_module(x)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * g
        gg = xp.multiply(g, g)  # (also the scratch buffer for the update below, to spare allocations)
        gg *= 1.0 - beta2
        v *= beta2
        v += gg
        if group["amsgrad"]:
            vmax = state.setdefault("max_exp_avg_sq", xp.zeros_like(x))
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        bias_c1 = 1.0 - beta1 ** step
        bias_c2 = 1.0 - beta2 ** step
        # Same algebra as PyTorch (not m_hat / (sqrt(v_hat) + eps)), so results agree to rounding:
        # denom = sqrt(v) / sqrt(bias_c2) + eps;  p -= (lr / bias_c1) * m / denom
        denom = xp.sqrt(v, out=gg)
        denom /= math.sqrt(bias_c2)
        denom += eps
        update = xp.divide(m, denom, out=denom)
        update *= lr / bias_c1
        x -= update


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): p *= 1 - lr*wd, then the Adam step on the plain gradient."""

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
