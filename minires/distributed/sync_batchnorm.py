"""SyncBatchNorm: batch normalisation with the statistics of the global batch, over all processes.

Forward sums each process's per-channel count, sum and sum of squares with one Allreduce; backward
sums the two per-channel gradient sums (of g and of g * xhat) with one more. In one process, or in
eval mode, the layer is BatchNorm itself (F.batch_norm, its fast paths included), so `--sync-bn`
changes nothing at N = 1, as PyTorch's SyncBatchNorm does.

Gradient scale. Each process's loss is the mean over its own samples, and the global loss is
L = sum_r share_r * loss_r with share_r = n_r / M (the process's fraction of the M values per
channel); GradientSync sums share_r * gradient likewise. The gradient reaching a process's layer is
therefore dL/dy / share_r, and the layer's sums are weighted by share_r before the Allreduce, so
that the result is exact for unequal parts too (a short last batch), not only for equal ones.
"""
from __future__ import annotations

import math

from .. import amp
from ..backend import get_array_module
from ..nn.batchnorm import _BatchNorm
from ..tensor import Function, Tensor
from .comm import world


class SyncBatchNormFunction(Function):
    """y = (x - mean) / sqrt(var + eps) * w + b per channel, mean and var over every process's batch."""

    name = "sync_batch_norm"
    input_names = ("input", "weight", "bias")

    def forward(self, x, w=None, b=None, running_mean=None, running_var=None, momentum=0.1, eps=1e-5,
                comm=None):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, math.prod(x.shape[2:]))  # (N, C, L)
        n = x3.shape[0] * x3.shape[2]  # this process's values per channel
        # NOTE: per-channel sums accumulate in float64. Summed in float32 over a batch they lose up to
        # ~1% of ResNet-20's batch-norm parameter gradients to cancellation at initialisation (measured
        # against float64), and N processes must match one process's fast path (~3e-6 there).
        # The global variance from sums of x and x^2 cancels too (E[x^2] - E[x]^2): those sums are
        # rebuilt in float64 from each process's two-pass M2 about its own (float32) mean m.
        if n:
            local_mean = x3.mean(axis=(0, 2), dtype=xp.float64)  # (C,)
            m = local_mean.astype(x.dtype)
            xc = x3 - m[:, None]
            m2 = (xc * xc).sum(axis=(0, 2), dtype=xp.float64)  # sum (x - m)^2
            m = m.astype(xp.float64)
            sum_sq = m2 + 2 * m * n * (local_mean - m) + n * m * m  # sum x^2, from sum (x - m)^2
        else:
            local_mean = sum_sq = xp.zeros(C, dtype=xp.float64)
        stats = xp.concatenate([n * local_mean, sum_sq, xp.full(1, float(n))])  # (2C+1,)
        comm.allreduce_(stats)
        M = stats[2 * C]  # values per channel over all processes (a device scalar: no host sync)
        mean64 = stats[:C] / M
        var64 = xp.maximum(stats[C:2 * C] / M - mean64 * mean64, 0.0)
        mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
        if running_mean is not None:  # updated in place, as BatchNorm does, with the global statistics
            running_mean *= 1 - momentum
            running_mean += momentum * mean.astype(running_mean.dtype)
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += (momentum * var64 * M / (M - 1)).astype(running_var.dtype)  # unbiased, as PyTorch
        invstd = 1 / xp.sqrt(var + eps)  # (C,)
        xhat = (x3 - mean[:, None]) * invstd[:, None]
        y = xhat * w[:, None] if w is not None else xhat
        if b is not None:
            y = y + b[:, None]
        self.xhat, self.invstd, self.w, self.comm, self.n = xhat, invstd, w, comm, n
        self.share = n / M  # this process's fraction of the global batch
        return y.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        g3 = g.reshape(self.xhat.shape)  # (N, C, L)
        C = g3.shape[1]
        db = g3.sum(axis=(0, 2), dtype=xp.float64)  # float64: see forward
        dw = (g3 * self.xhat).sum(axis=(0, 2), dtype=xp.float64)
        sums = xp.concatenate([db, dw]) * self.share  # this process's part of the global sums
        self.comm.allreduce_(sums)
        scale = self.invstd * self.w if self.w is not None else self.invstd
        dw, db = dw.astype(g.dtype), db.astype(g.dtype)
        if self.n == 0:  # no samples here: nothing to differentiate, but the Allreduce above is everyone's
            return xp.zeros_like(g), dw, db
        # dx = scale * (g - sum(G) / n - xhat * sum(G xhat) / n), G the global-loss gradient (module docstring)
        c1, c2 = (sums[:C] / self.n).astype(g.dtype), (sums[C:] / self.n).astype(g.dtype)
        dx = (g3 - c1[:, None] - self.xhat * c2[:, None]) * scale[:, None]
        return dx.reshape(g.shape), dw, db  # dw, db: this process's, summed by GradientSync


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C), (N, C, L) or (N, C, H, W) input whose training statistics are those of
    the global batch over the processes of `comm` (default: minires.distributed.world())."""

    _ranks, _layout = (2, 3, 4), "(N, C), (N, C, L) or (N, C, H, W)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, comm=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.comm = comm

    def forward(self, x):
        comm = self.comm if self.comm is not None else world()
        if not self.training or comm.size == 1:
            return super().forward(x)  # BatchNorm itself: running statistics, or one process's batch
        if not isinstance(x, Tensor) or x.ndim not in self._ranks or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected {self._layout} input with C = {self.num_features}, "
                             f"got {getattr(x, 'shape', type(x).__name__)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.array += 1
            if self.momentum is None:  # cumulative moving average, as PyTorch
                factor = 1.0 / float(self.num_batches_tracked.item())
        (x,) = amp.widen((x,))  # statistics in float32 under autocast, as amp.POLICY has batch_norm
        track = self.track_running_stats
        return SyncBatchNormFunction.apply(
            x, self.weight, self.bias, running_mean=self.running_mean.array if track else None,
            running_var=self.running_var.array if track else None, momentum=float(factor), eps=self.eps, comm=comm)

    @classmethod
    def convert_sync_batchnorm(cls, module, comm=None):
        """PyTorch's name for convert_sync_batchnorm."""
        return convert_sync_batchnorm(module, comm)


def convert_sync_batchnorm(module, comm=None):
    """module with every BatchNorm1d/2d replaced by a SyncBatchNorm holding the same parameters and
    running statistics (the same Tensors) and training flag; returns the (new) module, as PyTorch."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats, comm=comm)
        for name in ("weight", "bias"):
            sync._parameters[name] = module._parameters[name]
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            sync._buffers[name] = module._buffers[name]
        sync.train(module.training)
        return sync
    for name, child in list(module.named_children()):
        converted = convert_sync_batchnorm(child, comm)
        if converted is not child:
            module._modules[name] = converted  # in place: a Sequential keeps its order
    return module


__all__ = ["SyncBatchNorm", "SyncBatchNormFunction", "convert_sync_batchnorm"]
