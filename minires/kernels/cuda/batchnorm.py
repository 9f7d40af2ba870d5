"""CUDA fast path of batch_norm in training: the statistics, apply and gradient kernels of kernels.cu.

Statistics take one pass (Welford partials merged per channel), normalisation one more; backward
takes one pass for the two per-channel sums and one for dx. On float16 arrays the kernels keep
statistics and arithmetic in float32 (launcher.ACC_DTYPE). Under autocast the policy (minires.amp)
hands batch_norm float32 input, as it does the reference.

Why not the reference (functional/batchnorm.py): it makes a centred copy, its square and the
normalised copy as whole-array NumPy/CuPy expressions, each a pass over memory with a temporary;
the kernels fuse them into two passes forward and two backward, reading the input in its own layout
(channels-last or NCHW) with one index.
"""
from __future__ import annotations

from ... import backend
from ...functional.batchnorm import BatchNorm, update_running_stats
from . import launcher, ops as cuda_ops


class BatchNormCUDA(BatchNorm):
    """Training batch_norm on dense CuPy arrays of one float dtype by the hand-written kernels."""

    @classmethod
    def supports(cls, x, w=None, b=None, running_mean=None, running_var=None, training=False, **params):
        if not (training and launcher.enabled(backend.get_array_module(x), x.dtype)
                and cuda_ops.channel_layout(x) is not None):
            return False
        return all(a is None or a.dtype == x.dtype for a in (w, b, running_mean, running_var))

    def forward(self, x, w=None, b=None, running_mean=None, running_var=None, training=True,
                momentum=0.1, eps=1e-5):
        xp = backend.get_array_module(x)
        launch, inner = launcher.cupy_launcher(), cuda_ops.channel_layout(x)
        mean, var = cuda_ops.batch_norm_stats(launch, xp, x, inner)  # accumulator dtype (float32 for float16)
        M = x.size // x.shape[1]
        update_running_stats(running_mean, running_var, mean, var, momentum, M)
        invstd = 1 / xp.sqrt(var + eps)
        scale = invstd * w if w is not None else invstd
        shift = b if b is not None else xp.zeros_like(mean)
        self.x, self.inner, self.mean, self.invstd, self.scale, self.M = x, inner, mean, invstd, scale, M
        return cuda_ops.batch_norm_apply(launch, xp, x, inner, mean, scale, shift)

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        xp = backend.get_array_module(g)
        launch, inner, x = launcher.cupy_launcher(), self.inner, self.x
        if g.strides != x.strides:  # the kernels read g and x with one index
            gl = xp.empty_like(x)
            gl[...] = g
            g = gl
        sum_g, sum_gxc = cuda_ops.batch_norm_grad_sums(launch, xp, g, x, inner, self.mean)
        dx = None
        if need_x:
            c1 = -(self.invstd * self.invstd * sum_gxc) / self.M
            dx = cuda_ops.batch_norm_backward_apply(launch, xp, g, x, inner, self.mean, c1, -sum_g / self.M,
                                                    self.scale)
        dw = (sum_gxc * self.invstd).astype(x.dtype, copy=False) if need_w else None
        db = sum_g.astype(x.dtype, copy=False) if need_b else None  # sums in the accumulator dtype
        return dx, dw, db
