"""Recipe: the parts of a training run that a recipe decides, with the classic ones as defaults.

Configs are typed TrainConfig (minires.train.config, which applies a recipe's settings:
apply_recipe). The Trainer asks its recipe for the model's preparation, the augmentation, the optimizer, the lr
schedule, the loss and the number of steps, and calls its hooks at the start of each epoch, after
each step and at the end of training. `Recipe` itself is the classic run `minires train` makes
without --recipe (random crop + flip, SGD/Adam with the --schedule, mean cross-entropy); a recipe
subclass (airbench94.py) overrides what it changes and lists the options it fixes in `settings`.
"""
from __future__ import annotations

import math

from .. import functional as F
from .. import models
from ..data import CIFAR10_MEAN, CIFAR10_STD
from ..data import transforms as T
from ..optim import SGD, Adam, lr_scheduler


def param_groups(model, weight_decay: float) -> list:
    """Weight decay on conv/linear weights (ndim > 1) only, not on BatchNorm parameters or biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class Recipe:
    """The classic run (no --recipe); subclasses override what their recipe changes."""

    name = None
    settings: dict = {}  # TrainConfig fields the recipe sets; another value given for one of them is an error...
    adjustable: tuple = ()  # ...except for these, which a user may change (with a note of what overrides what)
    from_scratch = False  # the recipe trains its network from its own initialisation (no --init-from)
    drop_last = False  # drop the last, smaller training batch of each epoch
    sum_loss = False  # the loss is summed over the batch (else averaged)
    default_tta = "none"  # test-time augmentation of the final evaluation (minires.train.tta)

    # ---- steps -----------------------------------------------------------------------------------
    def total_steps(self, config, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run: a fractional --epochs ends inside the last epoch."""
        return max(1, math.ceil(config.epochs * steps_per_epoch - 1e-9))

    # ---- model, data, optimisation -----------------------------------------------------------------
    def build_model(self, config, num_classes: int):
        return models.get(config.model, num_classes=num_classes, **config.model_kwargs)

    def prepare(self, model, train_set, config) -> None:
        """Data-dependent initialisation of a fresh model (before it moves to its device)."""

    def transforms(self, config, image_size: int, train: bool):
        steps = [T.RandomCrop(image_size, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip()] if train else []
        if train and config.cutout:
            steps.append(T.Cutout(config.cutout))
        steps.append(T.Normalize(CIFAR10_MEAN, CIFAR10_STD))
        return T.Compose(steps)

    def optimizer(self, model, config):
        groups = param_groups(model, config.weight_decay)
        if config.optimizer == "sgd":
            return SGD(groups, lr=config.peak_lr, momentum=config.momentum, nesterov=config.momentum > 0)
        return Adam(groups, lr=config.peak_lr)

    def scheduler(self, optimizer, config, total_steps: int):
        """The lr schedule of config (stepped once per batch) over total_steps."""
        if config.schedule == "onecycle" and total_steps < 4:
            # NOTE: one-cycle needs two non-empty phases of at least two steps; a run this tiny
            # (a smoke test) anneals with cosine instead.
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        if config.schedule == "onecycle":
            # NOTE: a warm-up of under two steps gives OneCycleLR an empty or negative phase; only
            # tiny smoke-test runs hit this, so lengthen the warm-up to two steps instead of failing.
            pct = min(max(config.pct_start, 2.0 / total_steps), 0.5)
            return lr_scheduler.OneCycleLR(optimizer, max_lr=config.peak_lr, total_steps=total_steps, pct_start=pct)
        if config.schedule == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        if config.schedule == "piecewise":  # airbench's triangle: 0.2 -> 1 over pct_start, then down to 0.07
            peak = int(config.pct_start * total_steps)
            return lr_scheduler.LambdaLR(optimizer, lr_scheduler.PiecewiseLinear([0, peak, total_steps],
                                                                                 [0.2, 1.0, 0.07]))
        return lr_scheduler.MultiStepLR(optimizer, milestones=[total_steps // 2, total_steps * 3 // 4])

    def loss_fn(self, config):
        reduction = "sum" if self.sum_loss else "mean"
        return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=config.label_smoothing,
                                                 reduction=reduction)

    # ---- hooks ------------------------------------------------------------------------------------
    def attach(self, model) -> None:
        """Called once the model is on its device, before a resumed state is loaded."""

    def start_epoch(self, model, epoch: int) -> None:
        """Before epoch `epoch` (0-based) trains."""

    def after_step(self, model, step: int, total_steps: int) -> None:
        """After optimizer step `step` (1-based, counted over the whole run) of total_steps."""

    def state_dict(self) -> dict:
        """The recipe's own training state, {name: NumPy array}, saved in checkpoints."""
        return {}

    def load_state_dict(self, arrays: dict) -> None:
        if arrays:
            raise ValueError(f"recipe {self.name or 'classic'} keeps no state, but the checkpoint has {sorted(arrays)}")
