"""PNG plots of a run: loss/accuracy curves and the confusion matrix (matplotlib, Agg backend)."""
from __future__ import annotations

import io
import math

import numpy as np

from ..io import atomic_write_bytes


def _pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend, or None (with a note) when missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(fig, plt, path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def curves_figure(history: list, title: str = ""):
    """The figure of plot_curves (matplotlib.pyplot must be importable): loss and accuracy axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_loss, "loss", "cross-entropy loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [row[f"train_{key}"] for row in history], "o-", label="train")
        ax.plot(epochs, [row[f"test_{key}"] for row in history], "o-", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        lo, hi = math.floor(min(epochs)), math.ceil(max(epochs))
        ax.set_xlim(lo - 0.5, hi + 0.5)  # NOTE: a lone epoch would get matplotlib's 0.945-1.055
        if hi - lo <= 10:  # a short run: each epoch its tick
            ax.set_xticks(range(lo, hi + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, never 1.5
        ax.grid(alpha=0.3)
        ax.legend()
    losses = [row[k] for row in history for k in ("train_loss", "test_loss")]
    # a spike must not flatten the rest: a log axis where the losses span a factor of 10 or more
    if all(np.isfinite(v) and v > 0 for v in losses) and max(losses) >= 10 * min(losses):
        ax_loss.set_yscale("log")
        decades = math.log10(max(losses) / min(losses))  # labels 0.5, 1, 2, 5, 10 (not 5x10^-1 or 1e+01)
        ax_loss.yaxis.set_major_locator(LogLocator(10, subs=(1, 2, 5) if decades <= 3 else (1,)))
        ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_loss.yaxis.set_minor_formatter(NullFormatter())
        ax_loss.set_ylabel("cross-entropy loss (log scale)")
    else:
        ax_loss.yaxis.set_major_locator(MaxNLocator(6))
    ax_acc.set_ylim(0, 1)
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    return fig


def plot_curves(history: list, path, title: str = "") -> bool:
    """Loss and accuracy, train vs test, per epoch; False when matplotlib is not installed."""
    plt = _pyplot()
    if plt is None:
        return False
    _save(curves_figure(history, title), plt, path)
    return True


def plot_confusion_matrix(cm, classes, path, title: str = "") -> bool:
    """The confusion matrix as a heat map with counts, a colour bar and the accuracy in the title;
    False when matplotlib is not installed."""
    plt = _pyplot()
    if plt is None:
        return False
    cm = np.asarray(cm)
    k = len(classes)
    total = int(cm.sum())
    accuracy = np.trace(cm) / total if total else float("nan")
    fig, ax = plt.subplots(figsize=(2.0 + 0.6 * k, 1.5 + 0.55 * k))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="images")
    ax.set_xticks(range(k), labels=classes, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title + ': ' if title else ''}accuracy {accuracy:.2%} on {total} images", fontsize=9)
    limit = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > limit else "black")
    fig.tight_layout()
    _save(fig, plt, path)
    return True
