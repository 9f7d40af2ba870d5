"""airbench94 (Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", arXiv 2404.00498).

What it sets, after the paper and its `legacy/airbench94.py` (our own code):
- the network of models/airbench.py, its whitening filters from 5,000 training images (a seeded
  random choice: our image folders are sorted by class, where the script takes the first 5,000);
- batch 1024 without the last partial batch, 9.9 epochs (476 steps on 50,000 images);
- Nesterov SGD, momentum 0.85, on a *summed* label-smoothed (0.2) cross-entropy: with
  s = 1024 (1 + 1 / (1 - 0.85)), lr = 11.5 / s and the weight decay 0.0153 * batch / s per step,
  BatchNorm biases at 64x the lr (their decay kept at the same per-step size);
- the lr triangle 0.2 -> 1 over 23% of the steps, then down to 0.07 (schedule "piecewise");
- the whitening bias trains for 3 epochs, then freezes;
- lookahead-EMA every 5 steps with decay 0.95^5 (step / total)^3 over all float state, the model
  set to the average at the end;
- reflect-pad-2 random translation and alternating flip; 6-view weighted TTA at the end.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..data import CIFAR10_MEAN, CIFAR10_STD
from ..data import transforms as T
from ..optim import SGD, LookaheadEMA
from .base import Recipe

MOMENTUM = 0.85
_KILOSTEP = 1024 * (1 + 1 / (1 - MOMENTUM))  # Nesterov SGD's steady-state step is lr (1 + 1/(1 - momentum))
LR = 11.5 / _KILOSTEP  # per image of the summed loss
WEIGHT_DECAY = 0.0153 * 1024 / _KILOSTEP  # decay per step (lr * weight_decay) at batch 1024; scaled by batch / 1024
BIAS_LR_SCALE = 64.0
WHITEN_BIAS_EPOCHS = 3
WHITEN_IMAGES = 5000
EMA_EVERY = 5


class Airbench94(Recipe):
    name = "airbench94"
    settings = {"model": "airbench94", "epochs": 9.9, "batch_size": 1024, "optimizer": "sgd",
                "momentum": MOMENTUM, "label_smoothing": 0.2, "lr": LR, "weight_decay": WEIGHT_DECAY,
                "schedule": "piecewise", "pct_start": 0.23, "cutout": 0}
    adjustable = ("epochs", "batch_size")
    drop_last = True
    from_scratch = True
    sum_loss = True
    default_tta = "flip-shift"

    def __init__(self):
        self.ema = None

    def prepare(self, model, train_set, config):
        n = min(WHITEN_IMAGES, len(train_set))
        pick = np.sort(np.random.default_rng(config.seed).permutation(len(train_set))[:n])
        images = train_set.data[pick]  # (n, H, W, C) uint8
        images = images.transpose(0, 3, 1, 2).astype(np.float32) / 255  # (n, C, H, W)
        model.whiten_from(T.Normalize(CIFAR10_MEAN, CIFAR10_STD)(images))

    def transforms(self, config, image_size, train):
        steps = [T.AlternatingFlip(), T.RandomCrop(image_size, padding=2, padding_mode="reflect")] if train else []
        return T.Compose(steps + [T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])

    def optimizer(self, model, config):
        norm_biases = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        others = [p for p in model.parameters() if p.requires_grad and all(p is not b for b in norm_biases)]
        lr, bias_lr = config.lr, config.lr * BIAS_LR_SCALE
        wd = config.weight_decay * config.batch_size / 1024  # the decay per step grows with the batch, as airbench's
        return SGD([{"params": norm_biases, "lr": bias_lr, "weight_decay": wd / bias_lr},
                    {"params": others, "lr": lr, "weight_decay": wd / lr}],
                   lr=lr, momentum=config.momentum, nesterov=True)

    def attach(self, model):
        self.ema = LookaheadEMA(model)

    def start_epoch(self, model, epoch):
        model.whiten.bias.requires_grad = epoch < WHITEN_BIAS_EPOCHS

    def after_step(self, model, step, total_steps):
        if step % EMA_EVERY == 0:
            self.ema.update(0.95 ** EMA_EVERY * (step / total_steps) ** 3)
        if step == total_steps:
            self.ema.update(1.0)  # the model ends as the average

    def state_dict(self):
        return {f"ema.{k}": v for k, v in self.ema.state_dict().items()}

    def load_state_dict(self, arrays):
        self.ema.load_state_dict({k[len("ema."):]: v for k, v in arrays.items()})

