"""Casts, device moves and copies: t.to(...), t.float(), t.cuda(), t.type(...), t.clone(), np.asarray(t)."""
from __future__ import annotations

import numpy as np

from .. import _validate, backend
from ..tensor import (Function, Tensor, _as_dtype, bool_, float16, float32, float64, int32, int64, uint8)


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
    """A copy in C order, or channels-last (NHWC memory under an NCHW shape); the gradient passes through."""

    def forward(self, x, channels_last=False):
        if channels_last:
            xp = backend.get_array_module(x)
            return xp.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # (N, C, H, W), NHWC strides
        return x.copy()  # NumPy and CuPy copy in C order by default

    def backward(self, g):
        return g


# ---- memory formats and PyTorch's type names ---------------------------------------------------------

class memory_format:
    """PyTorch's torch.memory_format: contiguous_format, channels_last, preserve_format."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"


contiguous_format, channels_last, preserve_format = (memory_format(n) for n in
                                                     ("contiguous_format", "channels_last", "preserve_format"))

# dtype -> PyTorch's legacy type name, what t.type() returns ("torch.FloatTensor", "torch.cuda.LongTensor")
TYPE_NAMES = {float32: "FloatTensor", float64: "DoubleTensor", float16: "HalfTensor", int64: "LongTensor",
              int32: "IntTensor", np.dtype(np.int16): "ShortTensor", np.dtype(np.int8): "CharTensor",
              uint8: "ByteTensor", bool_: "BoolTensor"}
_BY_NAME = {name: dtype for dtype, name in TYPE_NAMES.items()}


class TensorType(type):
    """PyTorch's legacy tensor types (mr.FloatTensor, mr.LongTensor, ...): `FloatTensor([1, 2])` makes a
    tensor, `FloatTensor(2, 3)` an uninitialised one, `isinstance(t, FloatTensor)` checks dtype and device."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.device.type == cls.device

    def __call__(cls, *args, device=None):
        device = backend.parse_device(device or cls.device)
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):  # data
            data = args[0].array if isinstance(args[0], Tensor) else args[0]
            return Tensor(backend.to_device(np.array(backend.to_numpy(data), dtype=cls.dtype), device))
        shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args or (0,)
        return Tensor(backend.to_device(np.empty(tuple(int(s) for s in shape), dtype=cls.dtype), device))

    def __repr__(cls):
        return f"<class '{cls.__qualname__}'>"


def tensor_type(name: str, device: str = "cpu") -> TensorType:
    """The legacy type class for a TYPE_NAMES name on "cpu" or "cuda" (mr.FloatTensor, cuda.FloatTensor)."""
    prefix = "torch." if device == "cpu" else "torch.cuda."
    return TensorType(name, (), {"dtype": _BY_NAME[name], "device": device, "__qualname__": prefix + name})


LEGACY_TYPES = {name: tensor_type(name) for name in _BY_NAME}


def _type_target(op: str, dtype):
    """(dtype, device type or None) that t.type(dtype) names: a dtype, a type name string or a TensorType."""
    if isinstance(dtype, TensorType):
        return dtype.dtype, dtype.device
    if isinstance(dtype, str):
        for prefix, device in (("torch.cuda.", "cuda"), ("minires.cuda.", "cuda"), ("torch.", "cpu"), ("minires.", "cpu")):
            if dtype.startswith(prefix) and dtype[len(prefix):] in _BY_NAME:
                return _BY_NAME[dtype[len(prefix):]], device
    try:
        return _as_dtype(dtype), None
    except TypeError:
        raise TypeError(f"{op}: expected a dtype, a type name such as 'torch.FloatTensor' or a tensor type, "
                        f"got {dtype!r}") from None


# ---- to(): PyTorch's three overloads ---------------------------------------------------------------

def _looks_like_device(v) -> bool:
    if isinstance(v, str):
        kind = v.strip().lower().partition(":")[0]
        return kind in ("cpu", "cuda", "mps", "xla", "meta", "xpu", "hip")  # the known names: a clear error for the rest
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _dtype_or_none(v):
    if v is None or isinstance(v, (Tensor, bool)) or _looks_like_device(v):
        return None
    try:
        return np.dtype(v)
    except TypeError:
        return None


def parse_to(op: str, args, kwargs):
    """(device or None, dtype or None, copy, memory_format) from to(device, dtype), to(dtype), to(tensor)
    with their non_blocking/copy/memory_format, as PyTorch's Tensor.to and Module.to take them."""
    kwargs = dict(kwargs)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    flags = [kwargs.pop("non_blocking", False), kwargs.pop("copy", False)]
    fmt = kwargs.pop("memory_format", preserve_format)
    if kwargs:
        raise TypeError(f"{op}: unexpected keyword argument(s) {', '.join(sorted(kwargs))}")
    args = list(args)
    if args and isinstance(args[0], Tensor):  # to(other): other's device and dtype
        other = args.pop(0)
        device, dtype = other.device, other.dtype
    elif args and _dtype_or_none(args[0]) is not None:
        dtype = args.pop(0)
    elif args and args[0] is not None and not isinstance(args[0], bool):
        device = args.pop(0)
        if args and _dtype_or_none(args[0]) is not None:
            dtype = args.pop(0)
    if len(args) > 2 or not all(isinstance(a, (bool, np.bool_)) for a in args):
        raise TypeError(f"{op}: expected (device, dtype), (dtype) or (tensor), then non_blocking and copy; "
                        f"cannot read the arguments {tuple(args)!r}")
    flags[:len(args)] = args
    if device is not None:
        if not _looks_like_device(device):
            raise TypeError(f"{op}: {device!r} is neither a device ('cpu', 'cuda', 'cuda:N') nor a dtype")
        device = backend.parse_device(device)
    if dtype is not None and _dtype_or_none(dtype) is None:
        raise TypeError(f"{op}: {dtype!r} is not a dtype")
    if not isinstance(fmt, memory_format):
        raise TypeError(f"{op}: memory_format must be a minires memory format (channels_last, ...), got {fmt!r}")
    return device, _as_dtype(dtype), bool(flags[1]), fmt


# ---- Tensor methods (bound in minires/ops/__init__.py) -----------------------------------------------

def to(self, *args, **kwargs) -> Tensor:
    """Move to a device and/or cast to a dtype (or to another tensor's), as PyTorch's to(); differentiable.

    non_blocking is accepted and has no effect (copies are synchronous); copy=True always copies.
    """
    device, dtype, copy, fmt = parse_to("to", args, kwargs)
    out = self
    if dtype is not None and dtype != self.dtype:
        if dtype.kind in "fc":
            out = Cast.apply(out, dtype=dtype)
        else:  # integer and bool results carry no gradient, as in PyTorch
            out = Tensor(out.array.astype(dtype))
    if device is not None and device != self.device:
        out = ToDevice.apply(out, device=device)
    if fmt is channels_last and out.ndim != 4:
        raise ValueError(f"to: channels_last needs a 4-D (N, C, H, W) tensor, got shape {out.shape}")
    if fmt is not preserve_format and not is_contiguous(out, fmt):
        return Clone.apply(out, channels_last=fmt is channels_last)
    return Clone.apply(out, channels_last=fmt is channels_last) if copy and out is self else out


def cpu(self) -> Tensor:
    return self.to("cpu")


def cuda(self, device=None, non_blocking: bool = False) -> Tensor:
    """Move to a CUDA device: the first by default, an index, or a device ("cuda:1")."""
    if device is None:
        device = 0
    if isinstance(device, str) and backend.device(device).type != "cuda":
        raise ValueError(f"cuda: expected a CUDA device, got {device!r}")
    return self.to(backend.parse_device(device))


def type_(self, dtype=None, non_blocking: bool = False):
    """With no argument the type name ("torch.FloatTensor", "torch.cuda.LongTensor"), as PyTorch; else
    this tensor cast to a dtype, a type name or a tensor type (a "torch.cuda." name moves it to the GPU)."""
    if dtype is None:
        name = TYPE_NAMES.get(self.dtype, f"{self.dtype.name}Tensor")
        return f"torch.{name}" if self.device == "cpu" else f"torch.cuda.{name}"
    dtype, kind = _type_target("type", dtype)
    out = self.to(dtype=dtype)
    if kind == "cuda" and out.device.type != "cuda":
        return out.cuda()
    return out.cpu() if kind == "cpu" else out


def type_as(self, other) -> Tensor:
    """This tensor cast to other's dtype (t.type(other.type()) in PyTorch)."""
    if not isinstance(other, Tensor):
        raise TypeError(f"type_as: expected a Tensor, got {type(other).__name__}")
    return self.to(dtype=other.dtype)


def float_(self) -> Tensor:
    return self.to(dtype=float32)


def double(self) -> Tensor:
    return self.to(dtype=float64)


def half(self) -> Tensor:
    return self.to(dtype=float16)


def bool_method(self) -> Tensor:
    """A bool copy, outside the graph."""
    return self.to(dtype=bool_)


def long(self) -> Tensor:
    """An int64 copy, outside the graph."""
    return self.to(dtype=int64)


def int_(self) -> Tensor:
    """An int32 copy, outside the graph."""
    return self.to(dtype=int32)


def clone(self, memory_format=preserve_format) -> Tensor:
    """A differentiable copy that owns its memory (channels-last for a 4-D tensor if asked)."""
    return Clone.apply(self, channels_last=memory_format is channels_last and self.ndim == 4)


def contiguous(self, memory_format=contiguous_format) -> Tensor:
    """This tensor if laid out as asked (C order, or channels-last for 4-D), else a differentiable copy."""
    if memory_format is channels_last and self.ndim == 4:
        return self if is_contiguous(self, channels_last) else Clone.apply(self, channels_last=True)
    return self if self.array.flags.c_contiguous else Clone.apply(self)


def is_contiguous(self, memory_format=contiguous_format) -> bool:
    if memory_format is channels_last:
        return self.ndim == 4 and self.array.transpose(0, 2, 3, 1).flags.c_contiguous
    return bool(self.array.flags.c_contiguous)


def is_cuda(self) -> bool:
    return self.device.type == "cuda"


def is_floating_point(self) -> bool:
    return self.dtype.kind == "f"


# ---- Python and NumPy conversions ----------------------------------------------------------------------

def _one_element(op: str, x):
    _validate.scalar_tensor(op, x)
    return x.item()


def int_dunder(self) -> int:
    return int(_one_element("int", self))


def float_dunder(self) -> float:
    return float(_one_element("float", self))


def index_dunder(self) -> int:
    """A one-element integer tensor as an index (`classes[label]`), as PyTorch; other tensors are a TypeError."""
    if self.dtype.kind not in "iu" or self.array.size != 1:
        raise TypeError(f"only integer tensors of a single element can be converted to an index "
                        f"(got dtype {self.dtype}, shape {self.shape})")
    return int(self.item())


def array_dunder(self, dtype=None, copy=None):
    """np.asarray(t) of a CPU tensor (sharing memory when it can); a CUDA tensor is a TypeError, as in PyTorch."""
    if self.device != "cpu":
        raise TypeError(f"can't convert {self.device} device type tensor to numpy: use Tensor.cpu() to copy "
                        f"it to host memory first")
    if copy:
        return np.array(self.array, dtype=dtype, copy=True)
    return self.array if dtype is None or np.dtype(dtype) == self.dtype else self.array.astype(dtype)
