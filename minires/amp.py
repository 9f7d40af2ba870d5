"""Mixed precision: `autocast` and its policy table, op -> the dtype the op computes in.

Inside `autocast()`, minires.dispatch applies POLICY (autocast_inputs) to every op call, once, before
choosing its implementation:
- "float16": float32 inputs are cast down (a differentiable cast: float32 master weights receive
  float32 gradients). The GEMM ops, where tensor cores and half the memory traffic pay on a GPU.
- "float32": float16 inputs are widened, so statistics, exp/log and the loss keep float32 range and
  precision; their outputs are float32, so what follows them runs in float32 until the next GEMM.
- ops not in the table run in whatever dtype they receive (element-wise ops, pools, reshapes).

NumPy has no float16 BLAS, so on the CPU autocast is correct but slow. Loss scaling is
minires.optim.GradScaler, also reachable as minires.amp.GradScaler (PyTorch's torch.amp.GradScaler;
minires/__init__ binds it, so this module stays below optim).
"""
from __future__ import annotations

import threading

import numpy as np

from .tensor import Tensor

POLICY = {
    "conv2d": "float16",
    "linear": "float16",
    "batch_norm": "float32",
    "layer_norm": "float32",
    "cross_entropy": "float32",
    "softmax": "float32",
    "log_softmax": "float32",
    "nll_loss": "float32",
    "mse_loss": "float32",
    "normalize": "float32",
}

_state = threading.local()  # .dtype: the autocast dtype in this thread, or None


def autocast_dtype():
    """The dtype "float16" ops compute in under autocast in this thread, or None outside it."""
    return getattr(_state, "dtype", None)


def policy(op: str):
    """POLICY[op] inside autocast, None outside it or for ops that run in the dtype they get."""
    return POLICY.get(op) if autocast_dtype() is not None else None


class autocast:
    """Context manager (or decorator): the policy table applies inside; `enabled=False` turns it off inside.

    PyTorch's torch.amp.autocast signature; minires computes in float16 on every device, so `device_type`
    ("cuda" or "cpu") is checked but selects nothing, and `dtype=None` means float16."""

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True, cache_enabled=None):
        if not isinstance(device_type, str) or device_type.split(":")[0] not in ("cuda", "cpu"):
            raise ValueError(f"autocast: device_type must be 'cuda' or 'cpu', got {device_type!r}")
        dtype = np.float16 if dtype is None else dtype
        if np.dtype(dtype) != np.float16:
            raise ValueError(f"autocast: only float16 is supported, got dtype {np.dtype(dtype)}")
        self.device_type, self.enabled, self.dtype = device_type, bool(enabled), np.dtype(dtype)

    def __enter__(self):
        self.prev = autocast_dtype()
        _state.dtype = self.dtype if self.enabled else None  # enabled=False turns an outer autocast off
        return self

    def __exit__(self, *exc):
        _state.dtype = self.prev

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled):
                return fn(*args, **kwargs)
        return wrapper


def _cast_all(inputs, src, dst):
    """inputs with every Tensor of dtype src cast (differentiably) to dst; `inputs` itself if none is."""
    if not any(isinstance(t, Tensor) and t.dtype == src for t in inputs):
        return inputs
    return tuple(t.to(dtype=dst) if isinstance(t, Tensor) and t.dtype == src else t for t in inputs)


def widen(inputs):
    """Under autocast, float16 Tensors among inputs cast to float32."""
    return inputs if autocast_dtype() is None else _cast_all(inputs, np.float16, np.float32)


def autocast_inputs(op: str, inputs):
    """inputs in the dtype op computes in under autocast (POLICY[op]); as they are outside it or for other ops."""
    rule = policy(op)  # None outside autocast
    if rule == "float16":
        return _cast_all(inputs, np.float32, autocast_dtype())
    return widen(inputs) if rule == "float32" else inputs


__all__ = ["POLICY", "autocast", "autocast_dtype", "policy", "widen", "autocast_inputs"]

