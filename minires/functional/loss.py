"""Cross-entropy loss on logits with fused, numerically stable log-softmax and label smoothing; the
class-index target checks every loss shares."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _validate, backend, dispatch
from ..backend import get_array_module
from ..tensor import Function, Tensor

REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    name = "cross_entropy"
    inputs = ("input",)

    def forward(self, logits, target=None, label_smoothing=0.0, reduction="mean"):
        # logits (N, C); target (N,) class indices. An index outside [0, C) gives its row a NaN loss:
        # labels already on a GPU are checked later, without a sync (see cross_entropy and check_targets).
        xp = get_array_module(logits)
        N, C = logits.shape
        valid = (target >= 0) & (target < C)
        target = xp.where(valid, target, 0)
        # NOTE: subtracting the row max keeps exp() <= 1, so logits of 1e4 cannot overflow.
        z = logits - logits.max(axis=1, keepdims=True)  # (N, C)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)  # (N, 1), >= 1 unless the row holds NaN
        z -= xp.log(s)  # z is now log_softmax(logits)
        loss = -z[xp.arange(N), target]  # (N,) negative log-likelihood of the target class
        if label_smoothing > 0:
            # PyTorch: (1 - eps) * nll + eps * mean over classes of -log p
            loss *= 1 - label_smoothing
            loss -= label_smoothing * z.mean(axis=1)
        loss = xp.where(valid, loss, xp.nan).astype(loss.dtype, copy=False)
        e /= s
        self.p = e  # softmax (N, C), all backward needs
        self.target, self.label_smoothing, self.reduction = target, label_smoothing, reduction
        if reduction == "none":
            return loss
        if reduction == "sum":
            return xp.asarray(loss.sum())
        if N == 0:  # PyTorch gives NaN for the mean over an empty batch
            return xp.full((), xp.nan, dtype=logits.dtype)
        return xp.asarray(loss.sum() / N)

    def backward(self, g):
        # d loss_i / d logits_i = softmax_i - smoothed one-hot: (1 - eps) on the target, eps / C on every class
        xp = get_array_module(self.p)
        N, C = self.p.shape
        eps = self.label_smoothing
        d = self.p.copy()  # (N, C)
        d[xp.arange(N), self.target] -= 1 - eps
        if eps > 0:
            d -= eps / C
        if self.reduction == "none":
            d *= g[:, None]
        else:
            d *= g / max(N, 1) if self.reduction == "mean" else g
        return d


def reduction_arg(op: str, reduction) -> str:
    """reduction, one of REDUCTIONS."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: argument 'reduction' must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def class_indices(op: str, target, x):
    """target's array of integer class indices on x's device: a Tensor on that device, or a
    NumPy/CuPy array (a loader's NumPy labels follow the input)."""
    if isinstance(target, Tensor):
        if target.device != x.device:
            raise ValueError(f"{op}: 'target' {target.shape} is on {target.device} but 'input' {x.shape} "
                             f"is on {x.device}")
        t = target.array
    elif isinstance(target, np.ndarray) or get_array_module(target) is not np:
        t = backend.to_device(target, x.device)
    else:
        raise TypeError(f"{op}: argument 'target' must be a Tensor or an array of class indices, "
                        f"got {type(target).__name__}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: argument 'target' must hold integer class indices (int32/int64), "
                        f"got dtype {t.dtype}")
    return t


def check_targets(target, num_classes: int, shape=None, op: str = "cross_entropy") -> None:
    """ValueError naming the first class index outside [0, num_classes) (a host sync on a GPU)."""
    if target.size:
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            where = f" (input shape {shape})" if shape is not None else ""
            raise ValueError(f"{op}: target {bad} is out of bounds for {num_classes} classes{where}")


def cross_entropy(input, target, label_smoothing: float = 0.0, reduction: str = "mean"):
    """Cross entropy between logits (N, C) and integer class indices (N,), as torch's F.cross_entropy.

    Class indices given on the host (a NumPy array, a CPU Tensor) are range-checked here. Labels
    already on a GPU are not: that check would cost a device-to-host sync in every step, so, like
    PyTorch's device-side assert, it is deferred: the row's loss is NaN, and minires's Trainer
    names the bad index (check_targets) when it sees it.
    """
    _validate.tensor_arg("cross_entropy", "input", input, ndim=2)
    N, C = input.shape
    t = class_indices("cross_entropy", target, input)
    if t.shape != (N,):
        raise ValueError(f"cross_entropy: 'target' must have shape ({N},) for input of shape {input.shape}, "
                         f"got {tuple(t.shape)}")
    if C == 0:
        raise ValueError(f"cross_entropy: 'input' needs at least one class, got shape {input.shape}")
    host = target if isinstance(target, np.ndarray) else t
    if isinstance(host, np.ndarray):
        check_targets(host, C, input.shape)
    if not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool):
        raise TypeError(f"cross_entropy: argument 'label_smoothing' must be a float, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: argument 'label_smoothing' must be in [0.0, 1.0], got {label_smoothing}")
    return dispatch.call(CrossEntropy, input, target=t, label_smoothing=float(label_smoothing),
                         reduction=reduction_arg("cross_entropy", reduction))
