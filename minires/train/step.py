"""One training step, shared by the Trainer and examples/train_cifar10.py: forward under autocast,
loss, scaled backward, unscale, optional clip, optimizer step, loss-scale update."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import amp, backend
from ..functional.loss import check_targets
from ..nn.utils import grad_sum_of_squares


class TrainingDiverged(RuntimeError):
    """The training loss or a gradient became NaN or infinite (`loss`: the step's loss)."""

    def __init__(self, message: str, loss: float = math.nan):
        super().__init__(message)
        self.loss = loss


class StepResult(NamedTuple):
    """What a step reports to the host: its mean loss, its correct predictions, whether amp skipped it."""
    loss: float
    correct: int
    skipped: bool  # the gradients overflowed float16: no update, the loss scale was lowered


def grad_sumsq(optimizer):
    """The squared norm of optimizer's gradients as a device scalar (None without gradients);
    ~0.1 ms per step for ResNet-20 on the CPU."""
    return grad_sum_of_squares(p for group in optimizer.param_groups for p in group["params"])


def first_bad_grad(model) -> str:
    """'nan in layer1.0.conv1.weight': the first parameter whose gradient is not finite."""
    for name, p in model.named_parameters():
        if p.grad is not None:
            g = backend.to_numpy(p.grad.array)
            if not np.isfinite(g).all():
                return f"{'nan' if np.isnan(g).any() else 'inf'} in {name}"
    return "overflow of the squared norm"


def _clip(optimizer, sumsq, max_norm: float) -> None:
    """Scale the gradients so that their joint norm is at most max_norm, on the device (no host copy)."""
    xp = backend.get_array_module(sumsq)
    coef = xp.minimum(1.0, max_norm / (xp.sqrt(xp.asarray(sumsq, dtype=xp.float64)) + 1e-6))
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.array *= coef.astype(p.grad.array.dtype)


def train_step(model, loss_fn, optimizer, x, y, scaler=None, max_grad_norm: float | None = None,
               sync=None, share: float = 1.0) -> StepResult:
    """One optimizer step of model on the batch (x, y) with loss_fn(logits, y).

    With an enabled GradScaler the forward runs under amp.autocast (float16 GEMMs) and the backward
    on the scaled loss; an overflow skips the step (StepResult.skipped), not the run. max_grad_norm
    clips the (unscaled) gradients' joint norm. A non-finite loss, or a non-finite gradient without
    amp, raises TrainingDiverged before the optimizer step: the weights stay those of the last good
    step. An out-of-range label raises ValueError (on a GPU it shows only as a NaN loss).

    Data parallel: `sync` (a minires.distributed.GradientSync) sums share * gradient over the
    processes after backward, share being this process's fraction of the global batch; the loss
    and the correct count it reports, and the finiteness and amp decisions, are then the global
    batch's, the same on every process.
    """
    mixed = scaler is not None and scaler.is_enabled()
    optimizer.zero_grad()
    with amp.autocast(enabled=mixed):
        logits = model(x)
        loss = loss_fn(logits, y)
    if mixed:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    xp = backend.get_array_module(loss.array)
    loss_data, correct = loss.array, (logits.array.argmax(axis=1) == y.array).sum()
    if sync is not None:  # one set of collectives: the gradients, with the loss and the count in the last bucket
        reduced = sync(share, [xp.asarray(loss_data, dtype=xp.float64) * share, correct])
        loss_data, correct = reduced[0], reduced[1]
    if mixed:
        scaler.unscale_(optimizer)
        sumsq = scaler.unscaled_grad_sumsq(optimizer)
    else:
        sumsq = grad_sumsq(optimizer)
    if max_grad_norm is not None and sumsq is not None:
        _clip(optimizer, sumsq, max_grad_norm)
    # NOTE: one device-to-host transfer per step for the loss, the gradients' finiteness and the
    # accuracy count (three separate syncs would stall a GPU three times).
    host = backend.to_numpy(xp.stack([xp.asarray(loss_data, dtype=xp.float64).reshape(()),
                                      xp.asarray(0.0 if sumsq is None else sumsq, dtype=xp.float64).reshape(()),
                                      xp.asarray(correct, dtype=xp.float64).reshape(())]))
    loss_value, sumsq_value = float(host[0]), float(host[1])
    skipped = False
    if mixed:  # an overflow of the scaled float16 gradients skips the step, it does not stop the run
        scaler.record_found_inf(optimizer, sumsq_value)
        skipped, sumsq_value = scaler.found_inf(optimizer), 0.0
    if not math.isfinite(loss_value):
        check_targets(y.array, logits.shape[1])  # a bad label, not a divergence, when it is one
        raise TrainingDiverged(f"loss is {loss_value}", loss_value)
    if not math.isfinite(sumsq_value):
        raise TrainingDiverged(f"gradient is non-finite ({first_bad_grad(model)})", loss_value)
    if mixed:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return StepResult(loss_value, int(round(host[2])), skipped)
