"""The losses: cross_entropy on logits (a fused, numerically stable log-softmax, label smoothing),
nll_loss on log-probabilities, mse_loss. Their argument checks are in minires/_validate.py."""
from __future__ import annotations

from .. import _validate, dispatch
from .._validate import REDUCTIONS, check_targets, class_indices, reduction_arg  # noqa: F401 - their old home
from ..backend import get_array_module
from ..tensor import Function


class CrossEntropy(Function):
    name = "cross_entropy"
    input_names = ("input",)

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


def cross_entropy(input, target, label_smoothing: float = 0.0, reduction: str = "mean"):
    """Cross entropy between logits (N, C) and integer class indices (N,), as torch's F.cross_entropy.

    Class indices given on the host (a NumPy array, a CPU Tensor) are range-checked here. Labels
    already on a GPU are not: that check would cost a device-to-host sync in every step, so, like
    PyTorch's device-side assert, it is deferred: the row's loss is NaN, and minires's Trainer
    names the bad index (check_targets) when it sees it.
    """
    _validate.tensor_arg("cross_entropy", "input", input, ndim=2)
    t = _validate.logits_target(input, target)
    return dispatch.call(CrossEntropy, input, target=t,
                         label_smoothing=_validate.label_smoothing_arg(label_smoothing),
                         reduction=_validate.reduction_arg("cross_entropy", reduction))


class NLLLoss(Function):
    name = "nll_loss"
    input_names = ("input", "weight")

    def forward(self, x, weight=None, target=None, ignore_index=-100, reduction="mean"):
        # x (N, C, *d) or (C,); target (N, *d) or (): one class index per row of x
        xp = get_array_module(x)
        axis = 1 if x.ndim > 1 else 0  # the class axis
        C = x.shape[axis]
        valid = target != ignore_index
        t = xp.where(valid, target, 0)
        classes = xp.arange(C).reshape((C,) + (1,) * (x.ndim - axis - 1))  # (C, 1, ..., 1)
        self.onehot = xp.expand_dims(t, axis) == classes  # like x
        w = valid.astype(x.dtype) if weight is None else weight[t] * valid  # like target
        picked = xp.where(self.onehot, x, 0).sum(axis=axis)  # x[n, t[n], ...], like target
        loss = 0 - w * picked  # 0 - : ignored targets give +0, not -0
        self.w, self.axis, self.reduction = w, axis, reduction
        if reduction == "none":
            return loss
        if reduction == "sum":
            return xp.asarray(loss.sum())
        self.total = w.sum()
        if float(self.total) == 0:  # no target counts (all ignored, or an empty batch): NaN, as PyTorch
            return xp.full((), xp.nan, dtype=x.dtype)
        return xp.asarray(loss.sum() / self.total)

    def backward(self, g):
        xp = get_array_module(g)
        coef = -self.w * g  # like target: d loss / d x[n, t[n], ...]
        if self.reduction == "mean":
            coef = coef / self.total
        return xp.where(self.onehot, xp.expand_dims(coef, self.axis), 0).astype(g.dtype, copy=False), None


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """Negative log-likelihood of class indices: -input[n, target[n]], weighted by weight[target[n]].

    input (N, C), (N, C, d1, ...) or (C,) holds log-probabilities (log_softmax's output); target
    (N,), (N, d1, ...) or () holds class indices, those equal to ignore_index count for nothing.
    'mean' divides by the summed weights of the counted targets. Targets are range-checked here
    (a device-to-host sync on a GPU).
    """
    _validate.tensor_arg("nll_loss", "input", input, min_ndim=1)
    t = _validate.log_probs_target(input, target, ignore_index)
    weight = _validate.class_weight("nll_loss", weight, input)
    return dispatch.call(NLLLoss, input, weight, target=t, ignore_index=int(ignore_index),
                         reduction=_validate.reduction_arg("nll_loss", reduction))


class MSELoss(Function):
    name = "mse_loss"
    input_names = ("input", "target")

    def forward(self, x, y, reduction="mean"):
        xp = get_array_module(x)
        self.diff, self.reduction = x - y, reduction
        sq = self.diff * self.diff
        if reduction == "none":
            return sq
        if reduction == "sum":
            return xp.asarray(sq.sum())
        if sq.size == 0:  # the mean of nothing is NaN, as PyTorch
            return xp.full((), xp.nan, dtype=x.dtype)
        return xp.asarray(sq.mean())

    def backward(self, g):
        scale = g / self.diff.size if self.reduction == "mean" else g
        d = 2 * self.diff * scale
        return d, -d


def mse_loss(input, target, reduction: str = "mean"):
    """(input - target)^2, averaged, summed or per element; shapes must match (no broadcasting)."""
    _validate.same_shape("mse_loss", input, target)
    return dispatch.call(MSELoss, input, target, reduction=_validate.reduction_arg("mse_loss", reduction))
