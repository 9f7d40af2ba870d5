"""Evaluating a model: loss and accuracy over a loader, the per-class report, and `minires eval` of a checkpoint."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

from .. import backend, models, parallel
from .. import functional as F
from ..checkpoint import load_checkpoint
from ..data import DataLoader
from ..functional.loss import check_targets
from ..io import atomic_write_text
from ..tensor import no_grad
from .. import recipes
from . import plots
from .datasets import load_datasets
from .tta import tta_logits
from .run_info import describe_data
from .metrics import classification_report, confusion_matrix, format_report


def _batches(loader, progress: bool):
    """loader's batches, behind a tqdm bar on stderr when progress is asked for and tqdm is installed."""
    if progress:
        try:
            from tqdm import tqdm
            return tqdm(loader, total=len(loader), desc="eval", leave=False, file=sys.stderr, mininterval=0.5)
        except ImportError:
            pass
    return loader


def evaluate(model, loader, label_smoothing: float = 0.0, progress: bool = False, comm=None, tta: str = "none"):
    """(mean loss, accuracy, predictions, targets) of model on every batch of loader, in eval mode,
    on the logits of test-time augmentation `tta` (train/tta.py: none, flip, flip-shift).

    With `comm` (minires.distributed) each process evaluates its own loader (its part of the data)
    and the sums are combined: every process returns the whole data's figures, predictions and
    targets in rank order."""
    was_training = model.training
    model.eval()
    total_loss, preds, targets = 0.0, [], []
    with no_grad(), parallel.hold_blas():  # BLAS at one thread: the kernels split over the cores (minires.parallel)
        for x, y in _batches(loader, progress):
            logits = tta_logits(model, x, tta)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            value = float(loss.item())
            if not math.isfinite(value):  # on a GPU a bad label shows only as a NaN loss: name it, as the CPU does
                check_targets(y.array, logits.shape[1])
            total_loss += value * len(y)
            preds.append(backend.to_numpy(logits.array.argmax(axis=1)))
            targets.append(y.numpy())
    model.train(was_training)
    empty = np.zeros(0, dtype=np.int64)  # a process whose part of the data is empty
    preds, targets = (np.concatenate(a) if a else empty for a in (preds, targets))
    if comm is not None and comm.size > 1:
        parts = comm.allgather((total_loss, preds, targets))
        total_loss = sum(p[0] for p in parts)
        preds, targets = np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
    n = max(len(targets), 1)
    return total_loss / n, float((preds == targets).mean()) if len(targets) else math.nan, preds, targets


def report_on(model, loader, classes, progress: bool = False, comm=None, tta: str = "none") -> dict:
    """Accuracy, per-class precision/recall and the confusion matrix of model on loader (over comm's
    processes), with test-time augmentation `tta`."""
    _, _, preds, targets = evaluate(model, loader, progress=progress, comm=comm, tta=tta)
    return classification_report(confusion_matrix(targets, preds, len(classes)), classes)


def write_report(report: dict, out_dir, log=print, title: str = "") -> None:
    """Print the report and write final_eval.json and confusion_matrix.png into out_dir."""
    log(format_report(report))
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "final_eval.json"), json.dumps(report, indent=1) + "\n")
    classes = [row["class"] for row in report["per_class"]]
    plots.plot_confusion_matrix(report["confusion_matrix"], classes, os.path.join(out_dir, "confusion_matrix.png"),
                                title=title)


def checkpoint_of(path, log=print) -> str:
    """The checkpoint file that `minires eval --checkpoint PATH` evaluates: PATH, or a run folder's
    best.safetensors (else its last.safetensors); FileNotFoundError naming what is missing."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path!r} does not exist")
        return path
    for name, what in (("best.safetensors", "the weights of its best epoch"), ("last.safetensors", "its last epoch")):
        if os.path.isfile(os.path.join(path, name)):
            log(f"{path} is a run folder: evaluating its {name} ({what})")
            return os.path.join(path, name)
    raise FileNotFoundError(f"--checkpoint {path} is a folder without best.safetensors or last.safetensors: give a "
                            f"run folder (a minires train --out) or a checkpoint file")


def evaluate_checkpoint(path, data=None, device="cpu", batch_size=500, limit_test=None, out_dir=None, log=print,
                        progress: bool = False, cache: bool = True, tta: str | None = None):
    """Rebuild the model saved in a checkpoint and report on the test split of `data`, with test-time
    augmentation `tta` (default: the run's recipe's)."""
    ckpt = load_checkpoint(path)
    saved = ckpt["extra"].get("config")
    if saved is None:
        raise ValueError(f"checkpoint {path!r} has no training config; cannot tell which model it holds")
    if data is None and saved.get("data") and os.path.isdir(saved["data"]):  # the run's own data folder
        data = saved["data"]
        log(f"data: {data} (the folder the run was trained on; --data DIR picks another)")
    _, test_set = load_datasets(data, None, limit_test, saved.get("seed", 0), train=False, cache=cache)
    classes = list(test_set.classes)
    log(describe_data(None, test_set, limit_test=limit_test))
    model = models.get(saved["model"], num_classes=len(classes), **saved.get("model_kwargs", {}))
    model.load_state_dict(ckpt["model"])
    model.to(backend.parse_device(device))
    log(f"evaluating {path}: {saved['model']} after epoch {ckpt['epoch']} of {saved.get('epochs', '?')}, on {device}")
    recipe = recipes.get(saved.get("recipe"))
    tta = tta if tta is not None else (saved.get("tta") or recipe.default_tta)
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, device=device,
                        transform=recipe.transforms(None, int(test_set.data.shape[1]), train=False))
    if tta != "none":
        log(f"test-time augmentation: {tta}")
    report = report_on(model, loader, classes, progress, tta=tta)
    if out_dir is not None:
        write_report(report, out_dir, log, title=f"{saved['model']}, epoch {ckpt['epoch']}")
    else:
        log(format_report(report))
    return report
