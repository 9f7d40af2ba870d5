"""Learning-rate schedulers: StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, OneCycleLR, LinearLR,
LambdaLR (with PiecewiseLinear), ReduceLROnPlateau.

Each scheduler but ReduceLROnPlateau computes the lr of step `last_epoch` in closed form from the groups'
`initial_lr`, so a resumed run gets bit-identical rates (PyTorch's chainable recursive forms agree up to
rounding). Call `step()` once per batch or once per epoch; the constructor already applies step 0, as
PyTorch does. ReduceLROnPlateau follows a metric instead: `step(metrics)` once per evaluation.
"""
from __future__ import annotations

import bisect
import math
import numbers

from .optimizer import check_number
from .scheduler_base import LRScheduler, _check_optimizer, _metric_value, _per_group, _positive_int


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (last_epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = float(check_number("StepLR", "gamma", gamma, minimum=0.0))
        super().__init__(optimizer, last_epoch)
        self._initial_step()

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = initial_lr * gamma ** (number of milestones <= last_epoch)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        try:
            ms = list(milestones)
        except TypeError:
            raise TypeError(f"MultiStepLR: argument 'milestones' must be a list of ints, got {milestones!r}") from None
        for m in ms:
            if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 0:
                raise ValueError(f"MultiStepLR: argument 'milestones' must hold non-negative ints, got {milestones!r}")
        self.milestones = sorted(int(m) for m in ms)  # repeated milestones multiply by gamma twice, as PyTorch
        self.gamma = float(check_number("MultiStepLR", "gamma", gamma, minimum=0.0))
        super().__init__(optimizer, last_epoch)
        self._initial_step()

    def get_lr(self):
        k = bisect.bisect_right(self.milestones, self.last_epoch)
        return [base * self.gamma ** k for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = initial_lr * gamma ** last_epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        check_number("ExponentialLR", "gamma", gamma)
        if not gamma > 0:
            raise ValueError(f"ExponentialLR: invalid gamma {gamma!r} (must be > 0)")
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)
        self._initial_step()

    def get_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2 (SGDR without restarts)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = _positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = float(check_number("CosineAnnealingLR", "eta_min", eta_min, minimum=0.0))
        super().__init__(optimizer, last_epoch)
        self._initial_step()

    def get_lr(self):
        c = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up: lr = initial_lr * factor, factor going from start_factor to end_factor over total_iters."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        self.start_factor = float(check_number("LinearLR", "start_factor", start_factor))
        self.end_factor = float(check_number("LinearLR", "end_factor", end_factor))
        if not 0.0 < self.start_factor <= 1.0 or not 0.0 <= self.end_factor <= 1.0:
            raise ValueError(f"LinearLR: need 0 < start_factor <= 1 and 0 <= end_factor <= 1, got "
                             f"start_factor={start_factor!r}, end_factor={end_factor!r}")
        self.total_iters = _positive_int("LinearLR", "total_iters", total_iters)
        super().__init__(optimizer, last_epoch)
        self._initial_step()

    def get_lr(self):
        t = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * t
        return [base * factor for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin): warm up from max_lr/div_factor to max_lr, then anneal to a tiny lr.

    Phase boundaries, defaults and momentum cycling (SGD's momentum or Adam's beta1, between max_momentum
    and base_momentum, opposite to the lr) follow torch.optim.lr_scheduler.OneCycleLR. Step `total_steps`
    is the last one allowed; stepping further raises ValueError.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        name = "OneCycleLR"
        _check_optimizer(name, optimizer)
        if total_steps is not None:
            self.total_steps = _positive_int(name, "total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_positive_int(name, "epochs", epochs)
                                * _positive_int(name, "steps_per_epoch", steps_per_epoch))
        else:
            raise ValueError(f"{name}: give either total_steps or both epochs and steps_per_epoch "
                             f"(got total_steps={total_steps!r}, epochs={epochs!r}, "
                             f"steps_per_epoch={steps_per_epoch!r})")
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real) or not 0.0 <= pct_start <= 1.0:
            raise ValueError(f"{name}: argument 'pct_start' must be a float in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: argument 'anneal_strategy' must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        check_number(name, "div_factor", div_factor)
        check_number(name, "final_div_factor", final_div_factor)
        if div_factor <= 0 or final_div_factor <= 0:
            raise ValueError(f"{name}: div_factor and final_div_factor must be > 0, got {div_factor!r}, "
                             f"{final_div_factor!r}")
        T, p = self.total_steps, float(pct_start)
        # Steps at which each phase ends (phase i starts where phase i-1 ended, the first at 0), as PyTorch.
        warm_up = dict(end_step=p * T - 1, start_lr="initial_lr", end_lr="max_lr",
                       start_momentum="max_momentum", end_momentum="base_momentum")
        if three_phase:
            self._schedule_phases = [warm_up, dict(end_step=2 * p * T - 2, start_lr="max_lr", end_lr="initial_lr",
                                                   start_momentum="base_momentum", end_momentum="max_momentum"),
                                     dict(end_step=float(T - 1), start_lr="initial_lr", end_lr="min_lr",
                                          start_momentum="max_momentum", end_momentum="max_momentum")]
        else:
            self._schedule_phases = [warm_up, dict(end_step=float(T - 1), start_lr="max_lr", end_lr="min_lr",
                                                   start_momentum="base_momentum", end_momentum="max_momentum")]
        start = 0.0
        for i, phase in enumerate(self._schedule_phases):
            # NOTE: PyTorch divides by zero here; a clear error at construction is kinder.
            if phase["end_step"] == start:
                raise ValueError(f"{name}: phase {i} has zero length with total_steps={T}, pct_start={pct_start!r}; "
                                 "use more steps or another pct_start")
            start = phase["end_step"]

        groups = optimizer.param_groups
        if last_epoch == -1:
            for group, lr in zip(groups, _per_group(name, "max_lr", optimizer, max_lr)):
                group["initial_lr"] = lr / div_factor
                group["max_lr"] = lr
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = False
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with 'momentum' or 'betas' "
                                 f"({type(optimizer).__name__} has neither); pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            if last_epoch == -1:
                maxes = _per_group(name, "max_momentum", optimizer, max_momentum)
                bases = _per_group(name, "base_momentum", optimizer, base_momentum)
                for group, m_max, m_base in zip(groups, maxes, bases):
                    self._set_momentum(group, m_max)
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)
        self._initial_step()

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the schedule has total_steps="
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if step <= end or i == len(self._schedule_phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[phase["start_momentum"]],
                                                               group[phase["end_momentum"]], pct))
                    break
                start = end
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by `factor` once the metric has not improved for more than `patience` steps.

    Counters, threshold tests and the cooldown follow torch.optim.lr_scheduler.ReduceLROnPlateau; an lr
    never goes below its group's `min_lr`, and a reduction smaller than `eps` is skipped. The lrs depend on
    the metrics seen, not on a step count, so the constructor changes no lr and sets no `initial_lr`; the
    base class's get_last_lr/state_dict/load_state_dict apply as they are.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        name = "ReduceLROnPlateau"
        _check_optimizer(name, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{name}: argument 'mode' must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{name}: argument 'threshold_mode' must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        self.mode = mode
        self.threshold_mode = threshold_mode
        self.factor = float(check_number(name, "factor", factor, minimum=0.0, below=1.0))
        self.patience = _positive_int(name, "patience", patience, low=0)
        self.threshold = float(check_number(name, "threshold", threshold, minimum=0.0))
        self.cooldown = _positive_int(name, "cooldown", cooldown, low=0)
        self.min_lrs = _per_group(name, "min_lr", optimizer, min_lr, minimum=0.0)
        # A scalar min_lr also serves param groups added later (as PyTorch); a list cannot.
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else self.min_lrs[0]
        self.eps = float(check_number(name, "eps", eps, minimum=0.0))
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf  # the worst value: the first metric improves on it
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [float(group["lr"]) for group in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric `a` improves on `best` by more than the threshold (PyTorch's four formulas)."""
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    @property
    def in_cooldown(self) -> bool:
        """Whether bad epochs are still being ignored after the latest reduction."""
        return self.cooldown_counter > 0

    def step(self, metrics, epoch=None) -> None:
        """Record one value of the metric (a number or a one-element Tensor/array); reduce the lrs on a plateau."""
        current = _metric_value("ReduceLROnPlateau.step", metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(self.min_lrs) != len(groups):
            if self.default_min_lr is None:
                raise ValueError(f"ReduceLROnPlateau: min_lr has {len(self.min_lrs)} values, the optimizer now has "
                                 f"{len(groups)} param groups")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, min_lr)
            if old - new > self.eps:
                group["lr"] = new

    def get_lr(self):
        """The lrs of the latest `step()`: on a plateau schedule they are not a function of the step count."""
        return list(self._last_lr)


class PiecewiseLinear:
    """f(t): the straight lines through the knots (xs[i], ys[i]), constant beyond the first and last knot.

    A plain object (its knots are its whole state), so a LambdaLR built on it can be rebuilt and
    resumed. PiecewiseLinear([0, 109, 476], [0.2, 1.0, 0.07]) warms up from 0.2 to 1 over 109 steps,
    then decays linearly to 0.07 at step 476.
    """

    def __init__(self, xs, ys):
        xs, ys = [float(x) for x in xs], [float(y) for y in ys]
        if len(xs) != len(ys) or len(xs) < 1:
            raise ValueError(f"PiecewiseLinear: need as many xs as ys (at least one), got {len(xs)} and {len(ys)}")
        if any(b < a for a, b in zip(xs, xs[1:])):
            raise ValueError(f"PiecewiseLinear: xs must be non-decreasing, got {xs}")
        if not all(math.isfinite(v) for v in xs + ys):
            raise ValueError(f"PiecewiseLinear: knots must be finite, got xs={xs}, ys={ys}")
        self.xs, self.ys = xs, ys

    def __call__(self, t) -> float:
        xs, ys = self.xs, self.ys
        if t <= xs[0]:
            return ys[0]
        if t >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, t)  # xs[i-1] <= t < xs[i]
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (t - xs[i - 1]) / (xs[i] - xs[i - 1])

    def __repr__(self):
        return f"PiecewiseLinear(xs={self.xs}, ys={self.ys})"


class LambdaLR(LRScheduler):
    """lr = initial_lr * lr_lambda(last_epoch), one function for all groups or one per group.

    state_dict keeps the step, not the functions: rebuild the scheduler with the same functions, then
    load_state_dict (a PiecewiseLinear's knots are compared when both sides have one)."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer("LambdaLR", optimizer)
        n = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(lambdas) != n:
            raise ValueError(f"LambdaLR: argument 'lr_lambda' has {len(lambdas)} functions for {n} param groups")
        if not all(callable(f) for f in lambdas):
            raise TypeError(f"LambdaLR: argument 'lr_lambda' must be a function (or one per group), got {lr_lambda!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)
        self._initial_step()

    def get_lr(self):
        lrs = []
        for base, f in zip(self.base_lrs, self.lr_lambdas):
            factor = f(self.last_epoch)
            if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not math.isfinite(factor):
                raise ValueError(f"LambdaLR: lr_lambda({self.last_epoch}) returned {factor!r}, not a finite number")
            lrs.append(base * float(factor))
        return lrs

    def state_dict(self) -> dict:
        knots = [[f.xs, f.ys] if isinstance(f, PiecewiseLinear) else None for f in self.lr_lambdas]
        return {**{k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}, "knots": knots}

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        knots = state.pop("knots", None)
        if knots is not None:
            for i, (saved, f) in enumerate(zip(knots, self.lr_lambdas)):
                if saved is not None and isinstance(f, PiecewiseLinear) and saved != [f.xs, f.ys]:
                    raise ValueError(f"LambdaLR.load_state_dict: group {i}'s schedule was {saved}, this one is "
                                     f"{[f.xs, f.ys]} (another run length or recipe?)")
        super().load_state_dict(state)
