"""Cross-entropy loss on logits with fused, numerically stable log-softmax and label smoothing."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _validate, amp, backend
from ..tensor import Function
from .. import cuda
from ..cuda import ops as cuda_ops
from ..backend import get_array_module
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


class CrossEntropy(Function):
    name = "cross_entropy"

    def forward(self, logits, target=None, label_smoothing=0.0, reduction="mean"):
        xp = get_array_module(logits)
        N, C = logits.shape
        self.label_smoothing, self.reduction, self.target = label_smoothing, reduction, target
        if cuda.enabled(xp, logits.dtype) and N > 0:  # one thread per row: max, log-sum-exp, loss, softmax
            self.p, loss = cuda_ops.softmax_cross_entropy(cuda.launcher(), xp, logits, target, label_smoothing)
            self.rows = None  # marks the kernel path for backward
            return loss if reduction == "none" else xp.asarray(loss.sum() / (N if reduction == "mean" else 1))
        valid = None
        if xp is not np:  # the label range is checked afterwards (see check_targets): NaN for bad rows
            valid = (target >= 0) & (target < C)
            target = self.target = xp.where(valid, target, 0)
        # NOTE: subtracting the row max keeps exp() <= 1, so logits of 1e4 cannot overflow.
        z = logits - logits.max(axis=1, keepdims=True)  # (N, C)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)  # (N, 1), >= 1 unless the row holds NaN
        z -= xp.log(s)  # z is now log_softmax(logits)
        rows = xp.arange(N)
        loss = -z[rows, target]  # (N,) negative log-likelihood of the target class
        if label_smoothing > 0:
            # PyTorch: (1 - eps) * nll + eps * mean over classes of -log p
            loss *= 1 - label_smoothing
            loss -= label_smoothing * z.mean(axis=1)
        if valid is not None:
            loss = xp.where(valid, loss, xp.nan).astype(loss.dtype, copy=False)
        e /= s  # softmax, all backward needs
        self.p, self.rows = e, rows
        if reduction == "none":
            return loss
        if reduction == "sum":
            return xp.asarray(loss.sum())
        if N == 0:  # PyTorch gives NaN for the mean over an empty batch
            return xp.full((), xp.nan, dtype=logits.dtype)
        return xp.asarray(loss.sum() / N)

    def backward(self, g):
        N, C = self.p.shape
        eps = self.label_smoothing
        xp = get_array_module(self.p)
        if self.rows is None:
            scale = g / max(N, 1) if self.reduction == "mean" else g
            return cuda_ops.softmax_cross_entropy_backward(cuda.launcher(), xp, self.p, self.target,
                                                           xp.atleast_1d(scale), eps)
        # d loss_i / d logits_i = softmax_i - smoothed one-hot, with (1 - eps) on the target and eps/C on every class
        d = self.p.copy()  # (N, C)
        d[self.rows, self.target] -= 1 - eps
        if eps > 0:
            d -= eps / C
        if self.reduction == "none":
            d *= g[:, None]
        elif self.reduction == "mean":
            d *= g / max(N, 1)
        else:
            d *= g
        return d


def _target_array(target, logits):
    if isinstance(target, Tensor):
        if target.device != logits.device:
            raise ValueError(f"cross_entropy: 'target' {target.shape} is on {target.device} but 'input' "
                             f"{logits.shape} is on {logits.device}")
        return target.data
    if isinstance(target, np.ndarray) or get_array_module(target) is not np:
        return backend.to_device(target, logits.device)  # a loader's NumPy labels follow the logits
    raise TypeError(f"cross_entropy: argument 'target' must be a Tensor or an array of class indices, "
                    f"got {type(target).__name__}")


def check_targets(target, num_classes: int, shape=None) -> None:
    """ValueError naming the first class index outside [0, num_classes) (a host sync on a GPU)."""
    if target.size:
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            where = f" (input shape {shape})" if shape is not None else ""
            raise ValueError(f"cross_entropy: target {bad} is out of bounds for {num_classes} classes{where}")


def cross_entropy(logits, target, label_smoothing: float = 0.0, reduction: str = "mean"):
    """Cross entropy between logits (N, C) and integer class indices (N,), as torch's F.cross_entropy.

    On the CPU an out-of-range class index raises ValueError here. On a GPU that check would cost a
    device-to-host sync in every step, so, like PyTorch's device-side assert, it is deferred: the
    row's loss is NaN, and minires's Trainer names the bad index (check_targets) when it sees it.
    """
    logits = amp.widen_one(logits)  # under autocast: the loss in float32
    _validate.tensor_arg("cross_entropy", "input", logits, ndim=2)
    N, C = logits.shape
    t = _target_array(target, logits)
    host = target if isinstance(target, np.ndarray) else t  # labels given on the host are checked there
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: argument 'target' must hold integer class indices "
                        f"(int32/int64), got dtype {t.dtype}")
    if t.shape != (N,):
        raise ValueError(f"cross_entropy: 'target' must have shape ({N},) for input of shape {logits.shape}, "
                         f"got {tuple(t.shape)}")
    if C == 0:
        raise ValueError(f"cross_entropy: 'input' needs at least one class, got shape {logits.shape}")
    if isinstance(host, np.ndarray):
        check_targets(host, C, logits.shape)
    if not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool):
        raise TypeError(f"cross_entropy: argument 'label_smoothing' must be a float, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0.0, 1.0], got {label_smoothing}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return CrossEntropy.apply(logits, target=t, label_smoothing=float(label_smoothing), reduction=reduction)
