"""Dynamic loss scaling for float16 training (PyTorch's GradScaler rules).

float16 gradients underflow below ~6e-8, so the loss is multiplied by a scale before backward and
the gradients divided by it before the step; a step whose gradients overflowed is skipped and the
scale halved, and after `growth_interval` good steps it doubles.
"""
from __future__ import annotations

import math
import numbers

from ..nn.utils import grad_sum_of_squares


def _positive(name, value, low=0.0, high=math.inf, inclusive_high=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"GradScaler: argument '{name}' must be a finite real number, got {value!r}")
    if not (low < value < high or (inclusive_high and value == high)):
        raise ValueError(f"GradScaler: argument '{name}' must be in ({low}, {high}), got {value}")
    return float(value)


class GradScaler:
    """Dynamic loss scaling for float16 training, with PyTorch's GradScaler interface.

        scaler = GradScaler()
        with autocast():
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)   # unscales; skips the step if a gradient is inf/NaN
        scaler.update()          # halves the scale after a skipped step, doubles it every growth_interval good ones
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        self._scale = _positive("init_scale", init_scale)
        self.growth_factor = _positive("growth_factor", growth_factor, low=1.0)
        self.backoff_factor = _positive("backoff_factor", backoff_factor, high=1.0)
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, numbers.Integral) \
                or growth_interval < 1:
            raise ValueError(f"GradScaler: argument 'growth_interval' must be a positive int, got {growth_interval!r}")
        self.growth_interval = int(growth_interval)
        self.enabled = bool(enabled)
        self._growth_tracker = 0
        self._found_inf = {}  # id(optimizer) -> bool, for this step

    def get_scale(self) -> float:
        return self._scale if self.enabled else 1.0

    def is_enabled(self) -> bool:
        return self.enabled

    def scale(self, loss):
        """loss * scale (a Tensor, differentiable), or loss itself when disabled."""
        return loss * self._scale if self.enabled else loss

    def unscale_(self, optimizer) -> None:
        """Divide optimizer's gradients by the scale in place and keep their squared norm on the device:
        found_inf() (or step) copies it to the host once, record_found_inf() avoids even that."""
        if not self.enabled:
            return
        if id(optimizer) in self._found_inf:
            raise RuntimeError("GradScaler.unscale_: already called for this optimizer since the last update()")
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        for p in params:
            p.grad.array *= p.grad.array.dtype.type(1.0 / self._scale)
        # Kept on the device: found_inf() copies it to the host when first asked (one sync), and a
        # training loop that copies it together with its other numbers hands it back instead.
        self._found_inf[id(optimizer)] = grad_sum_of_squares(params)

    def unscaled_grad_sumsq(self, optimizer):
        """The squared norm of optimizer's unscaled gradients as unscale_ left it (a device scalar, or
        None without gradients); pass its host value to record_found_inf() to avoid a second sync."""
        value = self._found_inf.get(id(optimizer))
        return None if isinstance(value, bool) else value

    def record_found_inf(self, optimizer, grad_sumsq: float) -> None:
        """Settle this step's overflow check from the host value of unscaled_grad_sumsq()."""
        self._found_inf[id(optimizer)] = not math.isfinite(grad_sumsq)

    def step(self, optimizer):
        """optimizer.step() unless this step's gradients overflowed; unscales first if not done yet."""
        if not self.enabled:
            return optimizer.step()
        if id(optimizer) not in self._found_inf:
            self.unscale_(optimizer)
        if self.found_inf(optimizer):
            return None
        return optimizer.step()

    def found_inf(self, optimizer) -> bool:
        """Whether this step's unscaled gradients of `optimizer` held an inf or NaN."""
        return self._settle(id(optimizer))

    def _settle(self, key) -> bool:
        value = self._found_inf.get(key, False)
        if not isinstance(value, bool):  # the device value of unscale_: copy it to the host once
            value = self._found_inf[key] = value is not None and not math.isfinite(float(value))
        return value

    def update(self) -> None:
        """Adjust the scale for the next step from whether any gradient overflowed in this one."""
        if not self.enabled:
            return
        if any([self._settle(key) for key in list(self._found_inf)]):
            self._scale *= self.backoff_factor
            self._growth_tracker = 0
        elif self._found_inf:
            self._growth_tracker += 1
            if self._growth_tracker == self.growth_interval:
                self._scale *= self.growth_factor
                self._growth_tracker = 0
        self._found_inf = {}

    def state_dict(self) -> dict:
        return {"scale": self._scale, "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state: dict) -> None:
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} - set(state)
        if missing:
            raise ValueError(f"GradScaler.load_state_dict: missing keys {sorted(missing)}")
        self._scale = _positive("scale", state["scale"])
        self.growth_factor = _positive("growth_factor", state["growth_factor"], low=1.0)
        self.backoff_factor = _positive("backoff_factor", state["backoff_factor"], high=1.0)
        self.growth_interval = int(state["growth_interval"])
        self._growth_tracker = int(state["_growth_tracker"])
