"""The Tensor: an ndarray (NumPy or CuPy) with an autograd node, plus creation functions."""
from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from . import backend
from .autograd import run_backward

float16, float32, float64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
int32, int64, uint8, bool_ = np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint8), np.dtype(np.bool_)
DEFAULT_DTYPE = float32


def _as_dtype(dtype):
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: {dtype!r} is not a valid dtype") from None


class ValuesIndices(NamedTuple):
    """What max(dim) and min(dim) return: PyTorch's (values, indices) pair, unpackable and named."""
    values: "Tensor"
    indices: "Tensor"


def _int_dim(op: str, dim) -> None:
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r} (amax reduces over several dims)")


class Tensor:
    """An n-dimensional array on the CPU or a GPU that records the ops applied to it."""

    __array_priority__ = 1000  # make `ndarray + Tensor` defer to Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype") or not hasattr(data, "shape") or np.isscalar(data):
            data = np.asarray(data)
        elif isinstance(data, np.generic):
            data = np.asarray(data)
        self.data = data
        self.grad = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- properties -------------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.item())

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        """Over the first axis, as PyTorch: `for row in t`, `a, b = t`, `list(t)` (each row differentiable)."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        extra = f", device='{self.device}'" if self.device != "cpu" else ""
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(backend.to_numpy(self.data), separator=", ", threshold=50, precision=4)
        return f"tensor({body}, dtype={self.dtype}{extra}{grad})"

    # ---- conversion ---------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True):
        if flag and self.dtype.kind not in "fc":
            raise TypeError(f"requires_grad: only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed)."""
        return backend.to_numpy(self.data)

    def tolist(self):
        return self.numpy().tolist()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor(self.data)

    def to(self, device=None, dtype=None) -> "Tensor":
        """Move to a device ("cpu", "cuda", "cuda:N") and/or cast to a dtype; differentiable."""
        if dtype is None and device is not None and not isinstance(device, str):
            device, dtype = None, device  # t.to(mr.float64)
        if isinstance(device, str) and device.strip().lower() not in ("cpu", "cuda") and not device.lower().startswith("cuda:"):
            device, dtype = None, device if dtype is None else dtype
        out = self
        if dtype is not None and _as_dtype(dtype) != self.dtype:
            from .ops import Cast
            out = Cast.apply(out, dtype=_as_dtype(dtype))
        if device is not None and backend.parse_device(device) != self.device:
            from .ops import ToDevice
            out = ToDevice.apply(out, device=backend.parse_device(device))
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(dtype=float32)

    def double(self) -> "Tensor":
        return self.to(dtype=float64)

    def half(self) -> "Tensor":
        return self.to(dtype=float16)

    # ---- autograd -----------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into the `.grad` of every leaf it depends on."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs, got shape {self.shape}")
            g = xp.ones_like(self.data)
        else:
            if isinstance(grad, Tensor) and grad.device != self.device:
                raise ValueError(f"backward: grad is on {grad.device} but the tensor is on {self.device}")
            try:
                g = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            except (ValueError, TypeError):
                raise TypeError(f"backward: grad must be a Tensor or an array of numbers of shape {self.shape}, "
                                f"got {type(grad).__name__}") from None
            if g.shape != self.data.shape:
                raise ValueError(f"backward: grad of shape {tuple(g.shape)} does not match the tensor's shape {self.shape}")
            g = g.astype(self.dtype, copy=False)
        run_backward(self, g, retain_graph=retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ---- operators (defined in ops.py) -----------------------------------------------------------
    def _scalar(self, other, op: str = "tensor op"):
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (numbers.Number, np.generic)):
            xp = backend.get_array_module(self.data)
            dtype = self.dtype if self.dtype.kind in "fc" or isinstance(other, (numbers.Integral, np.integer)) else float32
            return Tensor(xp.asarray(other, dtype=dtype))
        if isinstance(other, np.ndarray) or backend.get_array_module(other) is not np:
            return Tensor(other)
        raise TypeError(f"{op}: unsupported operand type {type(other).__name__} for a Tensor operation")

    def __add__(self, o): from .ops import Add; return Add.apply(self, self._scalar(o, "add"))
    def __radd__(self, o): from .ops import Add; return Add.apply(self._scalar(o, "add"), self)
    def __sub__(self, o): from .ops import Sub; return Sub.apply(self, self._scalar(o, "sub"))
    def __rsub__(self, o): from .ops import Sub; return Sub.apply(self._scalar(o, "sub"), self)
    def __mul__(self, o): from .ops import Mul; return Mul.apply(self, self._scalar(o, "mul"))
    def __rmul__(self, o): from .ops import Mul; return Mul.apply(self._scalar(o, "mul"), self)
    def __truediv__(self, o): from .ops import Div; return Div.apply(self, self._scalar(o, "div"))
    def __rtruediv__(self, o): from .ops import Div; return Div.apply(self._scalar(o, "div"), self)
    def __pow__(self, o): from .ops import Pow; return Pow.apply(self, self._scalar(o, "pow"))
    def __rpow__(self, o): from .ops import Pow; return Pow.apply(self._scalar(o, "pow"), self)
    def __matmul__(self, o): from .ops import MatMul; return MatMul.apply(self, self._scalar(o, "matmul"))
    def __rmatmul__(self, o): from .ops import MatMul; return MatMul.apply(self._scalar(o, "matmul"), self)
    def __neg__(self): from .ops import Neg; return Neg.apply(self)
    def __getitem__(self, index): from .ops import GetItem; return GetItem.apply(self, index=index)

    # comparisons give non-differentiable boolean tensors
    def _compare(self, o, op: str, fn):
        other = self._scalar(o, op)
        try:
            np.broadcast_shapes(self.shape, other.shape)
        except ValueError:
            raise ValueError(f"{op}: shapes {self.shape} and {other.shape} cannot be broadcast together") from None
        if op not in ("eq", "ne") and "c" in (self.dtype.kind, other.dtype.kind):
            raise TypeError(f"{op}: complex numbers have no order (dtypes {self.dtype} and {other.dtype})")
        return Tensor(fn(self.data, other.data))

    def __eq__(self, o): return self._compare(o, "eq", lambda a, b: a == b)
    def __ne__(self, o): return self._compare(o, "ne", lambda a, b: a != b)
    def __lt__(self, o): return self._compare(o, "lt", lambda a, b: a < b)
    def __le__(self, o): return self._compare(o, "le", lambda a, b: a <= b)
    def __gt__(self, o): return self._compare(o, "gt", lambda a, b: a > b)
    def __ge__(self, o): return self._compare(o, "ge", lambda a, b: a >= b)
    __hash__ = object.__hash__

    def matmul(self, o): return self @ o
    def exp(self): from .ops import Exp; return Exp.apply(self)
    def log(self): from .ops import Log; return Log.apply(self)
    def sqrt(self): from .ops import Sqrt; return Sqrt.apply(self)
    def abs(self): from .ops import Abs; return Abs.apply(self)
    def relu(self): from .functional import relu; return relu(self)

    def sum(self, dim=None, keepdim=False):
        from .ops import Sum; return Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        from .ops import Mean; return Mean.apply(self, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """The largest value (dim=None), or the named pair (values, indices) along `dim`, as PyTorch."""
        from .ops import Max
        if dim is None:
            return Max.apply(self, dim=None, keepdim=keepdim)
        _int_dim("max", dim)
        return ValuesIndices(Max.apply(self, dim=dim, keepdim=keepdim), self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        """The smallest value (dim=None), or the named pair (values, indices) along `dim`, as PyTorch."""
        from .ops import Max, Neg
        if dim is None:
            return Neg.apply(Max.apply(Neg.apply(self), dim=None, keepdim=keepdim))
        _int_dim("min", dim)
        return ValuesIndices(Neg.apply(Max.apply(Neg.apply(self), dim=dim, keepdim=keepdim)),
                             self.argmin(dim, keepdim))

    def amax(self, dim=None, keepdim=False):
        """The largest values over one or several dims (ties share the gradient)."""
        from .ops import Max; return Max.apply(self, dim=dim, keepdim=keepdim)

    def argmax(self, dim=None, keepdim=False):
        """Indices of the maxima (not differentiable)."""
        return self._arg_reduce("argmax", dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        """Indices of the minima (not differentiable)."""
        return self._arg_reduce("argmin", dim, keepdim)

    def _arg_reduce(self, op, dim, keepdim):
        from .ops import _keepdim, _normalize_axes
        if dim is not None:
            _int_dim(op, dim)
        axes = _normalize_axes(op, dim, self.ndim)
        keepdim = _keepdim(op, keepdim)
        dim = None if not axes else axes[0]
        if self.data.size == 0 and (dim is None or self.shape[dim] == 0):
            raise ValueError(f"{op}: cannot take the {op} of an empty tensor of shape {self.shape}")
        out = getattr(self.data, op)(axis=dim)
        if keepdim and dim is not None:
            out = backend.get_array_module(out).expand_dims(out, dim)
        return Tensor(out)

    def reshape(self, *shape):
        from .ops import Reshape
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    view = reshape

    def permute(self, *dims):
        from .ops import Permute
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return Permute.apply(self, dims=dims)

    def transpose(self, dim0: int, dim1: int):
        from .ops import _normalize_axes
        for d in (dim0, dim1):
            if not isinstance(d, (int, np.integer)) or isinstance(d, (bool, np.bool_)):
                raise TypeError(f"transpose: dims must be ints, got {dim0!r}, {dim1!r}")
        dim0, dim1 = _normalize_axes("transpose", dim0, self.ndim), _normalize_axes("transpose", dim1, self.ndim)
        if self.ndim == 0:
            return self.reshape(())
        dim0, dim1 = dim0[0], dim1[0]
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        from .ops import flatten_shape
        return self.reshape(flatten_shape("flatten", self.shape, start_dim, end_dim))

    def unsqueeze(self, dim: int):
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, (bool, np.bool_)):
            raise TypeError(f"unsqueeze: dim must be an int, got {dim!r}")
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise ValueError(f"unsqueeze: dim {dim} is out of range for a tensor of shape {self.shape}")
        shape = list(self.shape)
        shape.insert(dim if dim >= 0 else self.ndim + 1 + dim, 1)
        return self.reshape(shape)

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape([s for s in self.shape if s != 1])
        from .ops import _normalize_axes
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"squeeze: dim must be an int or None, got {dim!r}")
        if self.ndim == 0:
            _normalize_axes("squeeze", dim, 0)
            return self.reshape(())
        dim = _normalize_axes("squeeze", dim, self.ndim)[0]
        shape = list(self.shape)
        if shape[dim] == 1:
            del shape[dim]
        return self.reshape(shape)


# ---- creation ----------------------------------------------------------------------------------
_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed minires' global generator (used by randn/rand and layer initialisation)."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def default_generator() -> np.random.Generator:
    return _rng


def get_rng_state() -> dict:
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _rng.bit_generator.state = state


def _infer_dtype(data):
    """float32 for Python floats and lists of them, as PyTorch's default dtype."""
    arr = np.asarray(data)
    if arr.dtype == np.float64 and not isinstance(data, np.ndarray):
        return float32
    return arr.dtype


def tensor(data, dtype=None, device="cpu", requires_grad: bool = False) -> Tensor:
    """A new leaf tensor copied from `data` (nested lists, scalars, NumPy/CuPy arrays or a Tensor)."""
    if isinstance(data, Tensor):
        data = data.data
    dtype = _as_dtype(dtype)
    xp = backend.get_array_module(data)
    if xp is np:
        try:
            arr = np.array(data, dtype=dtype if dtype is not None else _infer_dtype(data))
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tensor: data must be numeric nested lists of one shape or an array "
                            f"({type(exc).__name__}: {str(exc).split('.')[0]})") from None
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"tensor: data must be numeric (nested lists of numbers or an array), got dtype {arr.dtype}")
    else:
        arr = data.astype(dtype if dtype is not None else data.dtype, copy=True)
    arr = backend.to_device(arr, device)
    return Tensor(arr, requires_grad=requires_grad)


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape: dimensions must be non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _create(fill, shape, dtype, device, requires_grad):
    shape = _shape(shape)
    dtype = _as_dtype(dtype) or DEFAULT_DTYPE
    xp = backend.xp_for(device)
    if xp is np:
        arr = fill(shape, dtype)
    else:
        arr = backend.to_device(fill(shape, dtype), device)
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _create(lambda s, d: np.zeros(s, d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _create(lambda s, d: np.ones(s, d), shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _create(lambda s, d: np.full(s, fill_value, d), (shape,), dtype, device, requires_grad)


def randn(*shape, dtype=None, device="cpu", requires_grad=False, generator=None) -> Tensor:
    """Standard normal samples from the seeded generator (drawn on the CPU, then moved)."""
    g = generator or _rng
    return _create(lambda s, d: g.standard_normal(s, dtype=np.float64).astype(d), shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device="cpu", requires_grad=False, generator=None) -> Tensor:
    """Uniform [0, 1) samples from the seeded generator."""
    g = generator or _rng
    return _create(lambda s, d: g.random(s, dtype=np.float64).astype(d), shape, dtype, device, requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)
