"""Casts, device moves and copies: t.to(...), t.float(), t.cuda(), t.clone(), t.contiguous()."""
from __future__ import annotations

from .. import backend
from ..tensor import Function, Tensor, _as_dtype, float16, float32, float64, int32, int64


class Cast(Function):
    def forward(self, a, dtype=None):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)  # the source dtype: the walk checks it


class ToDevice(Function):
    name = "to"

    def forward(self, a, device="cpu"):
        self.device = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, g):
        return backend.to_device(g, self.device)


class Clone(Function):
    """A C-contiguous copy (clone(), and contiguous() of a strided view); the gradient passes through."""

    def forward(self, x):
        return x.copy()  # NumPy and CuPy copy in C order by default

    def backward(self, g):
        return g


# ---- Tensor methods (bound in minires/ops/__init__.py) -----------------------------------------------

def to(self, device=None, dtype=None) -> Tensor:
    """Move to a device ("cpu", "cuda", "cuda:N") and/or cast to a dtype; differentiable."""
    if dtype is None and device is not None and not isinstance(device, str):
        device, dtype = None, device  # t.to(mr.float64)
    if isinstance(device, str) and device.strip().lower() not in ("cpu", "cuda") and not device.lower().startswith("cuda:"):
        device, dtype = None, device if dtype is None else dtype
    out = self
    if dtype is not None and _as_dtype(dtype) != self.dtype:
        if _as_dtype(dtype).kind in "fc":
            out = Cast.apply(out, dtype=_as_dtype(dtype))
        else:  # integer and bool results carry no gradient, as in PyTorch
            out = Tensor(out.array.astype(_as_dtype(dtype)))
    if device is not None and backend.parse_device(device) != self.device:
        out = ToDevice.apply(out, device=backend.parse_device(device))
    return out


def cpu(self) -> Tensor:
    return self.to("cpu")


def cuda(self, index: int = 0) -> Tensor:
    return self.to(f"cuda:{index}")


def float_(self) -> Tensor:
    return self.to(dtype=float32)


def double(self) -> Tensor:
    return self.to(dtype=float64)


def half(self) -> Tensor:
    return self.to(dtype=float16)


def long(self) -> Tensor:
    """An int64 copy, outside the graph."""
    return self.to(dtype=int64)


def int_(self) -> Tensor:
    """An int32 copy, outside the graph."""
    return self.to(dtype=int32)


def clone(self) -> Tensor:
    """A differentiable copy that owns its memory."""
    return Clone.apply(self)


def contiguous(self) -> Tensor:
    """This tensor if its data is C-contiguous, else a differentiable C-contiguous copy."""
    return self if self.array.flags.c_contiguous else Clone.apply(self)
