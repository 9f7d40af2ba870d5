"""Adam with bias correction and L2 weight decay (added to the gradient, as torch.optim.Adam)."""
from __future__ import annotations

import math
import numbers

from ..backend import get_array_module
from .optimizer import Optimizer, check_number


class Adam(Optimizer):
    """Adam: m, v moving averages of g and g*g; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    _scalar_state = ("step",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _validate_group(self, group, from_defaults=False):
        check_number("Adam", "lr", group["lr"], minimum=0.0)
        check_number("Adam", "eps", group["eps"], minimum=0.0)
        check_number("Adam", "weight_decay", group["weight_decay"], minimum=0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(
                isinstance(b, numbers.Real) and not isinstance(b, bool) for b in betas):
            raise TypeError(f"Adam: argument 'betas' must be a pair of numbers, got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Adam: invalid betas[{i}] {b!r} (must be in [0, 1))")
        group["betas"] = tuple(float(b) for b in betas)

    def _update(self, p, g, group, state):
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        x = p.data
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
