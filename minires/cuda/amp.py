"""PyTorch's torch.cuda.amp, which old scripts use: autocast and GradScaler are minires.amp's."""
from __future__ import annotations

from .. import amp as _amp
from ..optim.grad_scaler import GradScaler
from ..tensor import float16


class autocast(_amp.autocast):
    """torch.cuda.amp.autocast: minires.amp.autocast; cache_enabled is accepted (minires keeps no cache of casts)."""

    def __init__(self, enabled: bool = True, dtype=float16, cache_enabled: bool = True):
        super().__init__("cuda", dtype=dtype, enabled=enabled)


__all__ = ["GradScaler", "autocast"]
