"""BatchNorm1d and BatchNorm2d layers over F.batch_norm, with running statistics as buffers."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from .. import functional as F
from ..tensor import Tensor
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    """Per-channel normalisation: batch statistics in training, running ones in eval.

    The subclasses differ only in the input ranks they accept (`_ranks`, named by `_layout`).
    """

    _ranks, _layout = (), ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        for name, v in (("eps", eps), ("momentum", momentum)):
            if not (v is None and name == "momentum") and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
                raise TypeError(f"{type(self).__name__}: {name} must be a real number, got {v!r}")
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"{type(self).__name__}: eps must be a finite number > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        xp = backend.xp_for(device or "cpu")
        dtype = np.dtype(dtype or np.float32)
        if affine:
            self.weight = Parameter(xp.ones((num_features,), dtype=dtype))
            self.bias = Parameter(xp.zeros((num_features,), dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(xp.zeros((num_features,), dtype=dtype)))
            self.register_buffer("running_var", Tensor(xp.ones((num_features,), dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.array[...] = 0
            self.running_var.array[...] = 1
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.array[...] = 1
            self.bias.array[...] = 0

    def forward(self, x):
        # F.batch_norm checks the input (and takes any of 2-D, 3-D, 4-D); the rank of this layer is its own.
        if isinstance(x, Tensor) and x.ndim not in self._ranks:
            raise ValueError(f"{type(self).__name__}: expected {' or '.join(f'{r}-D' for r in self._ranks)} "
                             f"input {self._layout}, got shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array += 1  # in place: state_dict views stay current
            if self.momentum is None:  # cumulative moving average, as PyTorch
                factor = 1.0 / float(self.num_batches_tracked.item())
        # Batch statistics in training, or when there are no running statistics to use.
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Per-channel normalisation of (N, C) or (N, C, L) input."""

    _ranks, _layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Per-channel normalisation of NCHW input."""

    _ranks, _layout = (4,), "(N, C, H, W)"
