"""CUDA fast path of cross_entropy: one kernel thread per row forward (max, log-sum-exp, loss, softmax),
one per element backward."""
from __future__ import annotations

from ... import cuda, dispatch
from ...backend import get_array_module
from ...cuda import ops as cuda_ops
from ...functional.loss import CrossEntropy


@dispatch.register("cross_entropy")
class CrossEntropyCUDA(CrossEntropy):
    """The kernel gives a row whose class index is outside [0, C) a NaN loss, as the reference does."""

    @classmethod
    def supports(cls, logits, target=None, **params):
        return cuda.enabled(get_array_module(logits), logits.dtype) and logits.shape[0] > 0

    def forward(self, logits, target=None, label_smoothing=0.0, reduction="mean"):
        xp = get_array_module(logits)
        N = logits.shape[0]
        self.p, loss = cuda_ops.softmax_cross_entropy(cuda.launcher(), xp, logits, target, label_smoothing)
        self.target, self.label_smoothing, self.reduction = target, label_smoothing, reduction
        return loss if reduction == "none" else xp.asarray(loss.sum() / (N if reduction == "mean" else 1))

    def backward(self, g):
        xp = get_array_module(self.p)
        scale = g / self.p.shape[0] if self.reduction == "mean" else g  # (N,) for 'none', else one value
        return cuda_ops.softmax_cross_entropy_backward(cuda.launcher(), xp, self.p, self.target,
                                                       xp.atleast_1d(scale), self.label_smoothing)
