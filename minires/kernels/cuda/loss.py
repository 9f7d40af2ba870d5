"""CUDA fast path of cross_entropy: one kernel thread per row forward (max, log-sum-exp, loss, softmax),
one per element backward.

Why not the reference (functional/loss.py): on CuPy its forward is a chain of calls, six or seven
(N, C) passes with their temporaries (max, subtract, exp, sum, log-softmax, softmax), and its backward
a copy, a scatter and a scale; the kernels make one pass each way, with the same NaN for a class
index out of range.
"""
from __future__ import annotations

from ...backend import get_array_module
from ...functional.loss import CrossEntropy
from . import launcher, ops as cuda_ops


class CrossEntropyCUDA(CrossEntropy):
    """The kernel gives a row whose class index is outside [0, C) a NaN loss, as the reference does."""

    @classmethod
    def supports(cls, logits, target=None, **params):
        return launcher.enabled(get_array_module(logits), logits.dtype) and logits.shape[0] > 0

    def forward(self, logits, target=None, label_smoothing=0.0, reduction="mean"):
        xp = get_array_module(logits)
        N = logits.shape[0]
        self.p, loss = cuda_ops.softmax_cross_entropy(launcher.cupy_launcher(), xp, logits, target, label_smoothing)
        self.target, self.label_smoothing, self.reduction = target, label_smoothing, reduction
        return loss if reduction == "none" else xp.asarray(loss.sum() / (N if reduction == "mean" else 1))

    def backward(self, g):
        xp = get_array_module(self.p)
        scale = g / self.p.shape[0] if self.reduction == "mean" else g  # (N,) for 'none', else one value
        return cuda_ops.softmax_cross_entropy_backward(launcher.cupy_launcher(), xp, self.p, self.target,
                                                       xp.atleast_1d(scale), self.label_smoothing)
