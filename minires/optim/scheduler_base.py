"""The base of every learning-rate scheduler (LRScheduler) and the argument checks they share."""
from __future__ import annotations

import copy
import math
import numbers

from .optimizer import Optimizer, check_number


def _positive_int(name: str, arg: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{name}: argument '{arg}' must be {kind}, got {value!r}")
    return int(value)


def _per_group(name: str, arg: str, optimizer: Optimizer, value, minimum=None) -> list:
    """A scalar option broadcast to every param group, or a list with one value per group."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: argument '{arg}' has {len(value)} values for {n} param groups")
        return [float(check_number(name, arg, v, minimum=minimum)) for v in value]
    return [float(check_number(name, arg, value, minimum=minimum))] * n


def _metric_value(name: str, metrics) -> float:
    """The metric as a Python float; a NaN is refused, since it would silently count as a bad epoch."""
    value = metrics
    if hasattr(value, "item") and not isinstance(value, numbers.Number):  # Tensor, NumPy or CuPy array
        try:
            value = value.item()
        except ValueError:
            raise ValueError(f"{name}: argument 'metrics' must be a single number, got an array of shape "
                             f"{tuple(value.shape)}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: argument 'metrics' must be a number, got {metrics!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name}: argument 'metrics' is NaN (did the loss diverge?)")
    return value


def _check_optimizer(name: str, optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name}: argument 'optimizer' must be a minires Optimizer, got {type(optimizer).__name__}")

# Keys of PyTorch's scheduler state_dicts with no counterpart here (a resumed PyTorch checkpoint has them).
_PYTORCH_PRIVATE = frozenset({"_step_count", "_is_initial", "_get_lr_called_within_step", "verbose"})


class LRScheduler:
    """Base class: sets `group['lr']` from `get_lr()` for step `last_epoch` on every `step()`."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        name = type(self).__name__
        _check_optimizer(name, optimizer)
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) or last_epoch < -1:
            raise ValueError(f"{name}: argument 'last_epoch' must be an int >= -1, got {last_epoch!r}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(f"{name}: last_epoch={last_epoch} resumes a schedule, but param group {i} "
                                     "has no 'initial_lr' (load the optimizer's state_dict first)")
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._last_lr = [float(group["lr"]) for group in optimizer.param_groups]

    def _initial_step(self) -> None:
        """Apply step 0 (subclasses call this at the end of their constructor, once their fields exist)."""
        self.step()

    def get_lr(self) -> list:
        """The lr of every param group at step `last_epoch`."""
        raise NotImplementedError

    def step(self, epoch=None) -> None:
        """Advance one step (or jump to `epoch`) and write the new lrs into the optimizer."""
        target = self.last_epoch + 1 if epoch is None else int(epoch)
        previous, self.last_epoch = self.last_epoch, target
        try:
            lrs = self.get_lr()
        except ValueError:
            self.last_epoch = previous  # a refused step leaves the schedule where it was
            raise
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = float(lr)
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The lrs set by the latest `step()`."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Every field except the optimizer, as plain JSON-serialisable values."""
        return copy.deepcopy({k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in self.__dict__.items() if k != "optimizer"})

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore fields saved by `state_dict` and write the lrs of step `last_epoch` into the optimizer.

        Unlike PyTorch, the optimizer's lrs (and OneCycle momenta) are re-applied here, so a resume is right
        whether the optimizer's state was loaded before or after the scheduler was built.
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or "last_epoch" not in state_dict:
            raise ValueError(f"{name}: expected a dict from state_dict() with 'last_epoch'")
        # PyTorch's schedulers also save their private bookkeeping: nothing here depends on it
        state_dict = {k: v for k, v in state_dict.items() if k not in _PYTORCH_PRIVATE}
        unknown = sorted(set(state_dict) - set(self.__dict__))
        if unknown:
            raise ValueError(f"{name}: unexpected keys {unknown} (saved from a different scheduler?)")
        self.__dict__.update({k: v for k, v in state_dict.items()})
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = float(lr)
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]
