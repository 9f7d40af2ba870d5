"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay."""
from __future__ import annotations

from .optimizer import Optimizer, check_number, required


class SGD(Optimizer):
    """SGD with PyTorch's update: buf = momentum*buf + (1-dampening)*(g + wd*p); p -= lr*buf (or Nesterov)."""

    def __init__(self, params, lr=required, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate_group(self, group, from_defaults=False):
        if group["lr"] is not required:
            check_number("SGD", "lr", group["lr"], minimum=0.0)
        elif not from_defaults:
            raise ValueError("SGD: argument 'lr' is required (in the constructor or in every param group)")
        check_number("SGD", "momentum", group["momentum"], minimum=0.0)
        check_number("SGD", "dampening", group["dampening"])
        check_number("SGD", "weight_decay", group["weight_decay"], minimum=0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening == 0, got momentum="
                             f"{group['momentum']!r}, dampening={group['dampening']!r}")

    def _update(self, p, g, group, state):
        # NOTE: Python floats (never NumPy float64 scalars) keep float32 arithmetic in float32.
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, wd = float(group["dampening"]), float(group["weight_decay"])
        x = p.array
        # NOTE: in-place ops on one scratch array: on the CPU, large temporaries cost more than the arithmetic.
        scratch = wd != 0
        if scratch:
            d_p = x * wd
            d_p += g  # g + wd*p in a new array: the gradient itself is never modified
        else:
            d_p = g
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d_p.copy()  # first step: no dampening, as PyTorch
            else:
                buf *= momentum
                buf += d_p if dampening == 0 else (1.0 - dampening) * d_p
            if group["nesterov"]:
                update = buf * momentum
                update += d_p  # d_p + momentum*buf
                d_p, scratch = update, True
            else:
                d_p, scratch = buf, False
        if scratch:
            d_p *= lr
            x -= d_p
        else:
            x -= lr * d_p
