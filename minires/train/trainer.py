"""The Trainer behind `minires train`: CIFAR-10 data, model, optimizer, schedule, loop, checkpoints."""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import minires as mr
from .. import amp, backend, models
from .. import functional as F
from ..checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from ..functional.loss import check_targets
from ..nn.utils import grad_sum_of_squares
from ..optim import SGD, Adam, lr_scheduler
from . import plots
from .datasets import _transforms, load_datasets
from .evaluation import evaluate, report_on, write_report
from .metrics import write_history

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "cosine", "step")
DEFAULT_LR = {"sgd": 0.2, "adam": 2e-3}
# Fields that define the run; on --resume they come from the checkpoint, not the command line.
RUN_FIELDS = ("model", "model_kwargs", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
              "schedule", "pct_start", "label_smoothing", "cutout", "seed", "limit_train", "limit_test",
              "init_from", "freeze_backbone", "amp")


class TrainingDiverged(RuntimeError):
    """The training loss or a gradient became NaN or infinite."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (the CLI's `minires train` options)."""
    model: str = "resnet20"
    model_kwargs: dict = field(default_factory=dict)
    data: str | None = None            # None: data.default_data_dir(), downloaded on first use
    out: str = "runs/resnet20"
    epochs: int = 5
    batch_size: int = 128
    eval_batch_size: int = 500
    optimizer: str = "sgd"
    lr: float | None = None            # peak lr; None: DEFAULT_LR[optimizer]
    momentum: float = 0.9
    weight_decay: float = 5e-4         # on conv/linear weights only
    schedule: str = "onecycle"
    pct_start: float = 0.25            # warm-up fraction of onecycle
    label_smoothing: float = 0.1
    cutout: int = 0                    # Cutout square size in pixels; 0 disables it
    device: str = "cpu"
    seed: int = 0
    resume: bool = False
    init_from: str | None = None
    freeze_backbone: bool = False
    limit_train: int | None = None
    limit_test: int | None = None
    progress: bool = True
    amp: bool = False                  # float16 conv/linear GEMMs (minires.amp.autocast) + dynamic loss scaling
    overwrite: bool = False            # start afresh in an `out` that already holds a run (else refused)
    cache: bool = True                 # cache decoded image folders under $MINIRES_DATA/cache

    def validate(self, check_init_from: bool = True) -> None:
        """Raise ValueError (FileNotFoundError for missing paths) naming the first bad option."""
        if self.model.lower() not in models.names():
            raise ValueError(f"unknown model {self.model!r}; choose one of: {', '.join(models.names())}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.pct_start < 1.0:
            raise ValueError(f"pct-start must be in (0, 1), got {self.pct_start}")
        if self.cutout < 0:
            raise ValueError(f"cutout must be >= 0, got {self.cutout}")
        backend.parse_device(self.device)
        if self.data is not None and not os.path.isdir(self.data):
            raise FileNotFoundError(f"data directory {self.data!r} does not exist")
        if check_init_from and self.init_from is not None and not os.path.isfile(self.init_from):
            raise FileNotFoundError(f"--init-from: checkpoint {self.init_from!r} does not exist")


def _few(keys, n=3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_pretrained(model, path, log=print, model_name=None) -> None:
    """Load the weights of a checkpoint, a weights-only file or a plain safetensors file of weights under
    torchvision's names into model; a head `fc` of another class count is left freshly initialised."""
    weights, meta = load_weights(path)
    config = ((meta or {}).get("extra") or {}).get("config")
    saved = config.get("model") if isinstance(config, dict) else None
    if saved is not None and model_name is not None and saved != model_name:
        raise ValueError(f"--init-from {path} holds a {saved} model, not {model_name}: pass --model {saved}, "
                         f"or weights of a {model_name}")
    own = model.state_dict()
    body = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    missing = [k for k in own if not k.startswith("fc.") and k not in body]
    unexpected = [k for k in body if k not in own]
    wrong = [k for k in body if k in own and tuple(body[k].shape) != own[k].shape]
    if missing or unexpected or wrong:
        what = f"a {saved} model" if saved else "weights"
        raise ValueError(f"--init-from {path} holds {what} that do not fit {model_name or 'this model'}: "
                         + "; ".join(part for part in (
                             f"{len(missing)} missing ({_few(missing)})" if missing else "",
                             f"{len(unexpected)} unexpected ({_few(unexpected)})" if unexpected else "",
                             f"{len(wrong)} of another shape ({_few(wrong)})" if wrong else "") if part))
    head = {k: v for k, v in weights.items() if k.startswith("fc.")}
    if set(head) == {k for k in own if k.startswith("fc.")} and all(
            tuple(v.shape) == own[k].shape for k, v in head.items()):
        model.load_state_dict(weights)
        return
    log(f"init-from {path}: its head {({k: tuple(v.shape) for k, v in head.items()})} is for "
        f"{next(iter(head.values())).shape[0] if head else 'no'} classes, this run has {model.fc.out_features}; "
        "keeping a freshly initialised fc")
    model.load_state_dict(body, strict=False)


def freeze_backbone(model) -> list:
    """requires_grad=False on every parameter outside `fc`; returns the head's parameters."""
    head = []
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")
        if p.requires_grad:
            head.append(p)
    return head


def param_groups(model, weight_decay: float) -> list:
    """Weight decay on conv/linear weights (ndim > 1) only, not on BatchNorm parameters or biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class Trainer:
    """Train one model on CIFAR-10 as a TrainConfig says, with checkpoints and metrics in config.out."""

    def __init__(self, config: TrainConfig, log=print):
        self.log = log
        self.last_path = os.path.join(config.out, "last.safetensors")
        self.best_path = os.path.join(config.out, "best.safetensors")
        resume_state = None
        if config.resume and not os.path.isfile(self.last_path):
            # A run killed before its first checkpoint: nothing to continue, so start it afresh.
            log(f"--resume: no checkpoint at {self.last_path} yet; starting a fresh run")
        elif config.resume:
            resume_state = load_checkpoint(self.last_path)
            config = self._merge_saved_config(config, resume_state["extra"]["config"])
        config.validate(check_init_from=resume_state is None)
        if resume_state is None and not config.resume and not config.overwrite and _holds_a_run(config.out):
            raise ValueError(f"{config.out} already holds a run: continue it with --resume, "
                             f"or start over there with --overwrite")
        self.config = c = config
        self.step = 0  # steps done in the current epoch (for the message on an interrupt)
        self.device = backend.parse_device(c.device)
        lr = c.lr if c.lr is not None else DEFAULT_LR[c.optimizer]

        self.train_set, self.test_set = load_datasets(c.data, c.limit_train, c.limit_test, c.seed, cache=c.cache)
        self.classes = list(self.train_set.classes)
        size = int(self.train_set.data.shape[1])
        from ..data import DataLoader
        self.train_loader = DataLoader(self.train_set, batch_size=c.batch_size, shuffle=True, seed=c.seed,
                                       transform=_transforms(size, c.cutout, train=True), device=self.device)
        self.test_loader = DataLoader(self.test_set, batch_size=c.eval_batch_size, shuffle=False, seed=c.seed,
                                      transform=_transforms(size, 0, train=False), device=self.device)

        mr.manual_seed(c.seed)
        self.model = models.get(c.model, num_classes=len(self.classes), **c.model_kwargs)
        if c.init_from and resume_state is None:
            load_pretrained(self.model, c.init_from, log, model_name=c.model)
        self.model.to(self.device)
        if c.freeze_backbone:
            freeze_backbone(self.model)
        groups = param_groups(self.model, c.weight_decay)
        if c.optimizer == "sgd":
            self.optimizer = SGD(groups, lr=lr, momentum=c.momentum, nesterov=c.momentum > 0)
        else:
            self.optimizer = Adam(groups, lr=lr)
        total = c.epochs * len(self.train_loader)
        if c.schedule == "onecycle" and total < 4:
            # NOTE: one-cycle needs two non-empty phases of at least two steps; a run this tiny
            # (a smoke test) anneals with cosine instead.
            self.scheduler = lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total)
        elif c.schedule == "onecycle":
            # NOTE: a warm-up of under two steps gives OneCycleLR an empty or negative phase; only
            # tiny smoke-test runs hit this, so lengthen the warm-up to two steps instead of failing.
            pct = min(max(c.pct_start, 2.0 / total), 0.5)
            self.scheduler = lr_scheduler.OneCycleLR(self.optimizer, max_lr=lr, total_steps=total, pct_start=pct)
        elif c.schedule == "cosine":
            self.scheduler = lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total)
        else:
            self.scheduler = lr_scheduler.MultiStepLR(self.optimizer, milestones=[total // 2, total * 3 // 4])
        self.loss_fn = lambda logits, y: F.cross_entropy(logits, y, label_smoothing=c.label_smoothing)
        self.scaler = amp.GradScaler(enabled=c.amp)

        self.epoch, self.history, self.best_acc = 0, [], -1.0
        if resume_state is not None:
            load_checkpoint(self.last_path, self.model, self.optimizer, self.scheduler)
            mr.set_rng_state(resume_state["rng_state"])
            self.epoch = resume_state["epoch"]
            self.history = resume_state["extra"]["history"]
            self.best_acc = resume_state["extra"]["best_acc"]
            if resume_state["extra"].get("scaler") is not None:
                self.scaler.load_state_dict(resume_state["extra"]["scaler"])
            log(f"resumed {self.last_path} at epoch {self.epoch}/{c.epochs}")
        elif _holds_a_run(c.out):  # --overwrite: the old run's files go now, so none is mistaken for this run's
            for name in RUN_FILES:
                if os.path.exists(os.path.join(c.out, name)):
                    os.remove(os.path.join(c.out, name))
            log(f"--overwrite: removed the run in {c.out}; starting afresh")

    def _merge_saved_config(self, config, saved: dict):
        """The saved run's options, except where to run and how to report (device, out, data, progress)."""
        changed = {k: (getattr(config, k), saved[k]) for k in RUN_FIELDS
                   if k in saved and getattr(config, k) != saved[k]}
        if changed:
            self.log("--resume keeps the saved run's options: "
                     + ", ".join(f"{k}={new!r} (not {old!r})" for k, (old, new) in changed.items()))
        return dataclasses.replace(config, **{k: saved[k] for k in RUN_FIELDS if k in saved})

    # ---- training -------------------------------------------------------------------------------
    def _set_train_mode(self) -> None:
        if self.config.freeze_backbone:
            self.model.eval()  # NOTE: a frozen backbone keeps its BatchNorm running statistics too
            self.model.fc.train()
        else:
            self.model.train()

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training set; raises TrainingDiverged on a non-finite loss."""
        self._set_train_mode()
        self.train_loader.set_epoch(epoch)
        n_batches = len(self.train_loader)
        bar = self._progress(n_batches, f"epoch {epoch + 1}/{self.config.epochs}")
        total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        skipped = 0
        for step, (x, y) in enumerate(self.train_loader):
            with amp.autocast(enabled=self.config.amp):
                logits = self.model(x)
                loss = self.loss_fn(logits, y)
            self.optimizer.zero_grad()
            if self.config.amp:  # an overflow of the scaled float16 gradients skips the step, not the run
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
                sumsq = self.scaler.unscaled_grad_sumsq(self.optimizer)
            else:
                loss.backward()
                sumsq = self._grad_sumsq()
            # NOTE: one device-to-host transfer per step for the loss, the gradients' finiteness and
            # the accuracy count (three separate syncs would stall a GPU three times).
            xp = backend.get_array_module(loss.data)
            correct_dev = (logits.data.argmax(axis=1) == y.data).sum()
            host = backend.to_numpy(xp.stack([loss.data.astype(xp.float64).reshape(()),
                                              xp.asarray(0.0 if sumsq is None else sumsq, dtype=xp.float64),
                                              correct_dev.astype(xp.float64)]))
            loss_value, sumsq_value, correct_step = float(host[0]), float(host[1]), int(host[2])
            if self.config.amp:
                self.scaler.record_found_inf(self.optimizer, sumsq_value)
                skipped += self.scaler.found_inf(self.optimizer)
                sumsq_value = 0.0  # an overflow skips the step (checked above), it does not stop the run
            if not math.isfinite(loss_value):
                bar.close()
                check_targets(y.data, logits.shape[1])  # deferred on a GPU: a bad label gives a NaN loss
                raise TrainingDiverged(
                    f"loss is {loss_value} at epoch {epoch + 1}, step {step + 1}/{n_batches}; stopping. "
                    f"The last good checkpoint is kept: {self._last_good()}")
            if not math.isfinite(sumsq_value):  # before step(): the weights stay those of the last good step
                bar.close()
                raise TrainingDiverged(
                    f"gradient is non-finite ({self._first_bad_grad()}) at epoch {epoch + 1}, step "
                    f"{step + 1}/{n_batches} (loss {loss_value:.4g}); stopping. "
                    f"The last good checkpoint is kept: {self._last_good()}")
            if self.config.amp:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
            self.step = step + 1
            total_loss += loss_value * len(y)
            correct += correct_step
            seen += len(y)
            elapsed = time.perf_counter() - start
            bar.update(loss=total_loss / seen, acc=correct / seen, ips=seen / max(elapsed, 1e-9))
        bar.close()
        elapsed = time.perf_counter() - start
        if skipped:
            self.log(f"amp: {skipped} step(s) skipped for overflowing float16 gradients; "
                     f"loss scale now {self.scaler.get_scale():g}")
        return {"train_loss": total_loss / seen, "train_acc": correct / seen,
                "images_per_s": seen / elapsed, "train_time_s": elapsed}

    def _grad_sumsq(self):
        """grad_sum_of_squares over the optimizer's parameters; ~0.1 ms per step for ResNet-20 on the CPU."""
        return grad_sum_of_squares(p for group in self.optimizer.param_groups for p in group["params"])

    def _first_bad_grad(self) -> str:
        """'nan in layer1.0.conv1.weight': the first parameter whose gradient is not finite."""
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                g = backend.to_numpy(p.grad.data)
                if not np.isfinite(g).all():
                    kind = "nan" if np.isnan(g).any() else "inf"
                    return f"{kind} in {name}"
        return "overflow of the squared norm"

    def interrupted(self) -> str:
        """What to tell a user who stopped the run (Ctrl-C): where, what is saved, how to go on."""
        where = f"stopped at epoch {self.epoch + 1}, step {self.step}/{len(self.train_loader)}"
        if os.path.exists(self.last_path):
            return (f"{where}; last checkpoint at {self.last_path} (epoch {self.epoch}); "
                    f"continue with --resume --out {self.config.out}")
        return f"{where}; no checkpoint yet (no epoch finished), so nothing to continue"

    def _last_good(self) -> str:
        return f"{self.last_path} (epoch {self.epoch})" if os.path.exists(self.last_path) else "none (no epoch finished)"

    def _progress(self, total, desc):
        return _Progress(total, desc, self.config.progress, self.log)

    def fit(self, max_epochs: int | None = None) -> dict:
        """Train to config.epochs (at most max_epochs more in this call); returns the final report."""
        c = self.config
        os.makedirs(c.out, exist_ok=True)
        _remove_stale_temp_files(c.out, self.log)
        end = c.epochs if max_epochs is None else min(c.epochs, self.epoch + max_epochs)
        while self.epoch < end:
            start = time.perf_counter()
            row = {"epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update(self.train_epoch(self.epoch))
            row["test_loss"], row["test_acc"], _, _ = evaluate(self.model, self.test_loader, c.label_smoothing)
            row["epoch_time_s"] = time.perf_counter() - start
            self.epoch += 1
            self.history.append(row)
            is_best = row["test_acc"] > self.best_acc
            self.best_acc = max(self.best_acc, row["test_acc"])
            # NOTE: best before last: a crash between the two then redoes this epoch on --resume and
            # rewrites best identically, where the other order could leave best one epoch stale.
            if is_best:  # weights and metadata only: a plain weights file for PyTorch and --init-from
                save_weights(self.best_path, self.model, epoch=self.epoch,
                             extra={"model": c.model, "classes": self.classes, "best_acc": self.best_acc,
                                    "config": dataclasses.asdict(c)})
            self._save(self.last_path)
            write_history(c.out, self.history)
            plots.plot_curves(self.history, os.path.join(c.out, "curves.png"),
                              title=f"{c.model} on {self.device}, run {c.out}")
            self.log(f"epoch {row['epoch']}/{c.epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
                     f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} | "
                     f"{row['images_per_s']:.0f} img/s, {row['epoch_time_s']:.1f} s")
        if self.epoch < c.epochs:
            return {}
        return self.final_report()

    def _save(self, path) -> None:
        config = dataclasses.asdict(self.config)
        save_checkpoint(path, self.model, self.optimizer, self.scheduler, epoch=self.epoch,
                        extra={"config": config, "classes": self.classes, "best_acc": self.best_acc,
                               "history": self.history, "scaler": self.scaler.state_dict()})

    def final_report(self) -> dict:
        """Evaluate on the test split; write final_eval.json and confusion_matrix.png; print the table."""
        report = report_on(self.model, self.test_loader, self.classes)
        report["best_acc"] = self.best_acc
        write_report(report, self.config.out, self.log, title=f"{self.config.model}, epoch {self.epoch}")
        return report


# Files a run writes into its directory, each through io.atomic_write_bytes (temp file + rename).
RUN_FILES = ("last.safetensors", "best.safetensors", "metrics.jsonl", "metrics.csv", "curves.png",
             "final_eval.json", "confusion_matrix.png")


def _holds_a_run(out_dir) -> bool:
    """Whether out_dir has checkpoints or metrics of an earlier run."""
    return any(os.path.exists(os.path.join(out_dir, name)) for name in
               ("last.safetensors", "best.safetensors", "metrics.jsonl"))


def _remove_stale_temp_files(out_dir, log=print) -> None:
    """Delete `.NAME.XXXX.tmp` leftovers of atomic writes interrupted by a crash (a SIGKILL skips their cleanup)."""
    for entry in os.listdir(out_dir):
        if entry.endswith(".tmp") and any(entry.startswith(f".{name}.") for name in RUN_FILES):
            try:
                os.unlink(os.path.join(out_dir, entry))
                log(f"removed {entry}, left by an interrupted write")
            except OSError:
                pass


class _Progress:
    """A tqdm bar with loss/accuracy/images-per-second, or a few plain lines without tqdm."""

    def __init__(self, total, desc, enabled, log):
        self.bar, self.total, self.desc, self.log, self.n = None, total, desc, log, 0
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr, mininterval=0.5)
            except ImportError:
                pass

    def update(self, loss, acc, ips):
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", img_s=f"{ips:.0f}", refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.n % max(1, self.total // 10) == 0 or self.n == self.total):
            self.log(f"{self.desc} step {self.n}/{self.total}: loss {loss:.4f} acc {acc:.4f} {ips:.0f} img/s")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
