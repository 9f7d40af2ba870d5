"""Training metrics: the per-epoch history files, and classification metrics for the final report."""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from ..io import atomic_write_text

COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_s", "epoch_time_s"]


def write_history(out_dir, history: list) -> None:
    """Rewrite metrics.jsonl and metrics.csv in out_dir from the full history (one row per epoch)."""
    lines = "".join(json.dumps(row) + "\n" for row in history)
    atomic_write_text(os.path.join(out_dir, "metrics.jsonl"), lines)
    buf = io.StringIO()
    columns = COLUMNS + sorted({k for row in history for k in row} - set(COLUMNS))
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(os.path.join(out_dir, "metrics.csv"), buf.getvalue())


def format_history(history: list) -> str:
    """The per-epoch table of a run: train loss and accuracy, test accuracy, training and epoch seconds."""
    lines = ["epoch  train loss  train acc  test acc  train s  epoch s"]
    for r in history:
        lines.append(f"{r['epoch']:5d}  {r['train_loss']:10.4f}  {r['train_acc']:9.4f}  {r['test_acc']:8.4f}  "
                     f"{r['train_time_s']:7.1f}  {r['epoch_time_s']:7.1f}")
    return "\n".join(lines)


def read_history(out_dir) -> list:
    """The rows of out_dir/metrics.jsonl (empty when absent)."""
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def confusion_matrix(targets, preds, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = true class, column = predicted class."""
    targets = np.asarray(targets, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if targets.shape != preds.shape:
        raise ValueError(f"confusion_matrix: targets {targets.shape} and preds {preds.shape} differ in shape")
    flat = np.bincount(targets * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)  # (true, pred)


def classification_report(cm: np.ndarray, classes) -> dict:
    """Accuracy and per-class precision/recall/support from a confusion matrix (0 where undefined)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(len(tp)), where=actual > 0)
    total = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / total) if total else math.nan,
        "num_samples": total,
        "per_class": [{"class": str(c), "precision": float(p), "recall": float(r), "support": int(s)}
                      for c, p, r, s in zip(classes, precision, recall, actual)],
        "confusion_matrix": cm.tolist(),
    }


def format_report(report: dict) -> str:
    """The report as a plain-text table."""
    width = max([5] + [len(row["class"]) for row in report["per_class"]])
    lines = [f"{'class':<{width}}  precision  recall  support"]
    for row in report["per_class"]:
        lines.append(f"{row['class']:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['support']:7d}")
    lines.append(f"accuracy: {report['accuracy']:.4f} on {report['num_samples']} images")
    return "\n".join(lines)


def runs_summary(reports: list) -> dict:
    """Mean and sample standard deviation of the accuracies (with and without test-time augmentation)
    and training times of several runs' final reports."""
    out = {"runs": len(reports)}
    for key in ("accuracy", "accuracy_without_tta", "train_time_s"):
        values = np.array([r[key] for r in reports if key in r], dtype=np.float64)
        out[key] = {"mean": float(values.mean()) if len(values) else math.nan,
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0, "values": values.tolist()}
    out["tta"] = reports[0].get("tta", "none") if reports else "none"
    return out


def format_runs_summary(summary: dict) -> str:
    """A few lines: accuracy mean +- std over the runs, with and without test-time augmentation."""
    n, a, b, t = summary["runs"], summary["accuracy"], summary["accuracy_without_tta"], summary["train_time_s"]
    return "\n".join([
        f"{n} runs: test accuracy {a['mean']:.4f} +- {a['std']:.4f} (test-time augmentation: {summary['tta']})",
        f"         without test-time augmentation {b['mean']:.4f} +- {b['std']:.4f}",
        f"         training time {t['mean'] / 60:.2f} +- {t['std'] / 60:.2f} min (evaluation excluded)"])
