"""The autograd engine: Tensor (an ndarray, NumPy or CuPy, with a graph node), Function, and the backward walk."""
from __future__ import annotations

import numbers
import threading
from typing import NamedTuple

import numpy as np

from . import backend

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


def _broadcasts_to(shape, target) -> bool:
    try:
        return np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False


def _sizes(sizes):
    """expand(2, 3) and expand((2, 3)) alike."""
    return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)


def _correction(op: str, dim, unbiased, correction):
    """(dim, correction) from torch.var's arguments: unbiased=True (default) is correction=1."""
    if isinstance(dim, (bool, np.bool_)):  # var(False): the older var(unbiased) overload
        if unbiased is not None:
            raise TypeError(f"{op}: got unbiased twice ({dim!r} and {unbiased!r})")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: give unbiased or correction, not both")
    if unbiased is not None:
        if not isinstance(unbiased, (bool, np.bool_)):
            raise TypeError(f"{op}: unbiased must be a bool, got {unbiased!r}")
        return dim, 1 if unbiased else 0
    if correction is None:
        return dim, 1
    if isinstance(correction, (bool, np.bool_)) or not isinstance(correction, numbers.Real) or correction < 0:
        raise ValueError(f"{op}: correction must be a non-negative number, got {correction!r}")
    return dim, correction


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
            if _as_dtype(dtype).kind in "fc":
                out = Cast.apply(out, dtype=_as_dtype(dtype))
            else:  # integer and bool results carry no gradient, as in PyTorch
                out = Tensor(out.data.astype(_as_dtype(dtype)))
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
    def sigmoid(self): from .functional import sigmoid; return sigmoid(self)
    def tanh(self): from .functional import tanh; return tanh(self)

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

    # ---- statistics, norms and clamping -----------------------------------------------------------
    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """Variance over dim (all by default), unbiased (divide by N - 1) unless unbiased=False or correction=0."""
        from .ops import Var
        dim, correction = _correction("var", dim, unbiased, correction)
        return Var.apply(self, dim=dim, correction=correction, keepdim=keepdim)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        """Standard deviation over dim, with the same correction rules as var."""
        from .ops import Std
        dim, correction = _correction("std", dim, unbiased, correction)
        return Std.apply(self, dim=dim, correction=correction, keepdim=keepdim)

    def norm(self, p=2, dim=None, keepdim=False):
        """The vector p-norm over dim (all elements by default); p a number >= 0, inf, -inf or 'fro'."""
        from .ops import Norm; return Norm.apply(self, p=p, dim=dim, keepdim=keepdim)

    def clamp(self, min=None, max=None):
        """Values limited to [min, max] (numbers or broadcastable tensors; either may be None)."""
        from .ops import Clamp
        for name, bound in (("min", min), ("max", max)):
            if bound is not None and not isinstance(bound, (Tensor, numbers.Real, np.generic)):
                raise TypeError(f"clamp: argument '{name}' must be a number, a Tensor or None, "
                                f"got {type(bound).__name__}")
        return Clamp.apply(self, min, max)

    clip = clamp

    # ---- broadcasting, repeating and splitting ----------------------------------------------------
    def expand(self, *sizes):
        """A broadcast view with size-1 dims stretched to `sizes` (-1 keeps a dim; extra sizes lead)."""
        from .ops import Expand; return Expand.apply(self, sizes=_sizes(sizes))

    def expand_as(self, other):
        """expand(*other.shape)."""
        return self.expand(*other.shape)

    def repeat(self, *sizes):
        """The tensor tiled sizes[i] times along dim i (extra sizes add leading dims); a copy."""
        from .ops import Repeat; return Repeat.apply(self, sizes=_sizes(sizes))

    def split(self, split_size_or_sections, dim=0):
        """Pieces along dim: of split_size each (the last may be smaller), or of the listed sizes."""
        dim = self._split_dim("split", dim)
        n, s = self.shape[dim], split_size_or_sections
        if isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            if s < 0 or (s == 0 and n > 0):
                raise ValueError(f"split: split_size must be positive, got {s} for dim {dim} of shape {self.shape}")
            bounds = [(i, i + s) for i in range(0, n, s)] or [(0, 0)]
        elif isinstance(s, (list, tuple)) and all(
                isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) for k in s):
            if any(k < 0 for k in s) or sum(s) != n:
                raise ValueError(f"split: sections {list(s)} must be non-negative and sum to the size {n} "
                                 f"of dim {dim} of shape {self.shape}")
            ends = np.cumsum([0] + list(s)).tolist()
            bounds = list(zip(ends[:-1], ends[1:]))
        else:
            raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, got {s!r}")
        return tuple(self._slice(dim, a, b) for a, b in bounds)

    def chunk(self, chunks, dim=0):
        """Up to `chunks` pieces of ceil(size / chunks) along dim (the last may be smaller), as torch.chunk."""
        if isinstance(chunks, (bool, np.bool_)) or not isinstance(chunks, (int, np.integer)):
            raise TypeError(f"chunk: chunks must be an int, got {chunks!r}")
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks} (tensor of shape {self.shape})")
        dim = self._split_dim("chunk", dim)
        n = self.shape[dim]
        if n == 0:  # as PyTorch: `chunks` empty pieces
            return tuple(self._slice(dim, 0, 0) for _ in range(chunks))
        return self.split(-(-n // chunks), dim)

    def _split_dim(self, op, dim):
        from .ops import _normalize_axes
        if self.ndim == 0:
            raise ValueError(f"{op}: expects a tensor with at least one dimension, got shape ()")
        _int_dim(op, dim)
        return _normalize_axes(op, dim, self.ndim)[0]

    def _slice(self, dim, start, stop):
        from .ops import GetItem
        return GetItem.apply(self, index=(slice(None),) * dim + (slice(start, stop),))

    # ---- copies and integer casts -----------------------------------------------------------------
    def clone(self):
        """A differentiable copy that owns its memory."""
        from .ops import Clone; return Clone.apply(self)

    def contiguous(self):
        """This tensor if its data is C-contiguous, else a differentiable C-contiguous copy."""
        from .ops import Clone
        return self if self.data.flags.c_contiguous else Clone.apply(self)

    def long(self):
        """An int64 copy, outside the graph."""
        return self.to(dtype=int64)

    def int(self):
        """An int32 copy, outside the graph."""
        return self.to(dtype=int32)

    # ---- in-place (outside the graph) -------------------------------------------------------------
    # NOTE: there is no version counter as in PyTorch: an in-place write into an array that a graph node
    # saved (x in y = x * w, with only w requiring grad) is not detected.
    def _check_inplace(self, op, *others):
        if not is_grad_enabled():
            return
        if self.requires_grad:
            raise RuntimeError(f"{op}: cannot modify a tensor that requires grad in place (shape {self.shape}): "
                               f"autograd would differentiate through overwritten values; do it inside "
                               f"mr.no_grad() or on t.detach()")
        if any(isinstance(o, Tensor) and o.requires_grad for o in others):
            raise RuntimeError(f"{op}: an in-place op does not record a graph, so its other operand must not "
                               f"require grad; do it inside mr.no_grad() or pass .detach()")

    def _operand(self, op, value, move=False):
        """A raw array or number to write into this tensor's data; Tensors on another device move only if `move`."""
        if isinstance(value, Tensor):
            if value.device != self.device and not move:
                raise ValueError(f"{op}: the operand is on {value.device} but the tensor is on {self.device}")
            return backend.to_device(value.data, self.device) if value.device != self.device else value.data
        if isinstance(value, (numbers.Number, np.generic)):
            return value
        if isinstance(value, np.ndarray) or backend.get_array_module(value) is not np:
            return backend.to_device(value, self.device)
        raise TypeError(f"{op}: expected a number or a Tensor, got {type(value).__name__}")

    def _write(self, op, fn, value_shape=()):
        if not _broadcasts_to(tuple(value_shape), self.shape):
            raise ValueError(f"{op}: an operand of shape {tuple(value_shape)} cannot be broadcast to the tensor's "
                             f"shape {self.shape}")
        try:
            fn(self.data)
        except (TypeError, ValueError) as exc:
            if "read-only" in str(exc):
                raise RuntimeError(f"{op}: the tensor (shape {self.shape}) is a read-only broadcast view (from "
                                   f"expand); clone() it first") from None
            kind = TypeError if isinstance(exc, TypeError) else ValueError  # not NumPy's own subclasses
            raise kind(f"{op}: cannot write into a {self.dtype} tensor of shape {self.shape} "
                       f"({str(exc).splitlines()[0]})") from None
        return self

    def zero_(self):
        """Fill with zeros in place; returns self."""
        return self._fill("zero_", 0)

    def fill_(self, value):
        """Fill with one number (or one-element tensor) in place; returns self."""
        return self._fill("fill_", value)

    def _fill(self, op, value):
        self._check_inplace(op, value)
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"{op}: value must be a number or a one-element tensor, got shape {value.shape}")
            value = value.item()
        if not isinstance(value, (numbers.Number, np.generic)):
            raise TypeError(f"{op}: value must be a number, got {type(value).__name__}")

        def fill(d):
            d[...] = value
        return self._write(op, fill)

    def copy_(self, src):
        """Copy src's values (broadcast, cast, moved across devices) into this tensor; returns self."""
        self._check_inplace("copy_", src)
        data = self._operand("copy_", src, move=True)

        def copy(d):
            d[...] = data
        return self._write("copy_", copy, getattr(data, "shape", ()))

    def add_(self, other, alpha=1):
        """self += alpha * other in place (other broadcast to self's shape); returns self."""
        self._check_inplace("add_", other)
        data = self._operand("add_", other)
        if not isinstance(alpha, (numbers.Number, np.generic)) or isinstance(alpha, (bool, np.bool_)):
            raise TypeError(f"add_: alpha must be a number, got {alpha!r}")

        def add(d):
            d += data if alpha == 1 else data * alpha
        return self._write("add_", add, getattr(data, "shape", ()))

    def mul_(self, other):
        """self *= other in place (other broadcast to self's shape); returns self."""
        self._check_inplace("mul_", other)
        data = self._operand("mul_", other)

        def mul(d):
            d *= data
        return self._write("mul_", mul, getattr(data, "shape", ()))

    def __setitem__(self, index, value):
        """t[index] = value with NumPy's indexing; like every in-place op, only outside the graph."""
        self._check_inplace("setitem", value)
        data = self._operand("setitem", value, move=True)
        items = index if isinstance(index, tuple) else (index,)
        items = tuple(self._operand("setitem", i, move=True) if isinstance(i, Tensor) else i for i in items)
        index = items if isinstance(index, tuple) else items[0]

        def assign(d):
            d[index] = data
        try:
            return self._write("setitem", assign)
        except IndexError as exc:
            raise IndexError(f"setitem: index {index!r} is invalid for shape {self.shape} ({exc})") from None


# ---- Function, grad mode and the backward walk ---------------------------------------------------

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether ops record a graph in this thread."""
    return getattr(_state, "enabled", True)


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc):
        _state.enabled = self.prev

    def __call__(self, fn):  # usable as a decorator
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)
        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


class no_grad(_GradMode):
    """Context manager (or decorator) that turns graph recording off."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_GradMode):
    """Context manager (or decorator) that turns graph recording back on."""

    def __init__(self):
        super().__init__(True)


class Function:
    """One differentiable op: `forward(*arrays, **params)` and `backward(grad)` on raw arrays.

    A subclass saves what backward needs on `self`; backward returns one gradient (or None)
    per positional input of forward. `apply` wraps arrays in Tensors and links the graph.
    """

    name = None  # op name used in error messages; defaults to the lower-cased class name
    inputs = ()  # names of forward's positional inputs, for error messages ("input", "weight", ...)

    def __init__(self):
        self.parents = ()
        self.needs_input_grad = ()
        self.freed = False

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    # True for an op whose own wrapper checks dtypes (batch_norm's float16 input with float32
    # parameters on the GPU kernels under autocast); every other op takes one float dtype.
    mixed_float_dtypes = False

    @classmethod
    def op_name(cls) -> str:
        return cls.name or cls.__name__.lower()

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays and, when needed, record the node for backward."""
        tensors = [t for t in inputs if isinstance(t, Tensor)]
        _check_same_device_and_dtype(cls, inputs)
        ctx = cls()
        requires_grad = is_grad_enabled() and any(t.requires_grad for t in tensors)
        ctx.needs_input_grad = tuple(
            requires_grad and isinstance(t, Tensor) and t.requires_grad for t in inputs)
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        out = ctx.forward(*arrays, **params)
        result = Tensor(out, requires_grad=requires_grad)
        if requires_grad:
            ctx.parents = inputs
            result._ctx = ctx
        return result

    def release(self) -> None:
        """Drop saved arrays and inputs once backward has used them."""
        self.__dict__.clear()
        self.freed = True


def _check_same_device_and_dtype(cls, inputs) -> None:
    """The one device/dtype check of every op: its Tensor inputs share a device and a float dtype."""
    named = [(cls.inputs[i] if i < len(cls.inputs) else f"input {i}", t)
             for i, t in enumerate(inputs) if isinstance(t, Tensor)]
    if len(named) < 2:
        return
    op = cls.op_name()
    if len({t.device for _, t in named}) > 1:
        desc = ", ".join(f"'{k}' {tuple(t.shape)} on {t.device}" for k, t in named)
        raise ValueError(f"{op}: all tensors must be on one device, got {desc}")
    floats = [(k, t) for k, t in named if t.dtype.kind in "fc"]
    if len({t.dtype for _, t in floats}) > 1 and not cls.mixed_float_dtypes:
        desc = ", ".join(f"'{k}' {tuple(t.shape)} {t.dtype}" for k, t in floats)
        raise TypeError(f"{op}: floating-point inputs must share one dtype, got {desc}")


def _topological_order(root):
    """Tensors reachable from root that need grad, children before parents (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is None:
            continue
        if ctx.freed:
            raise RuntimeError(
                "backward: trying to backward through the graph a second time (its saved arrays "
                "were freed); pass retain_graph=True to the first backward call")
        for p in ctx.parents:
            if isinstance(p, Tensor) and p.requires_grad and id(p) not in visited:
                stack.append((p, False))
    return order


def run_backward(root, grad, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) * grad into every leaf's `.grad`."""
    order = _topological_order(root)
    grads = {id(root): grad}
    with no_grad():
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            ctx = t._ctx
            if ctx is None:  # a leaf: accumulate as PyTorch does
                if t.grad is None:
                    t.grad = Tensor(g.copy())
                else:
                    t.grad = Tensor(t.grad.data + g)
                continue
            try:
                input_grads = ctx.backward(_read_only(g))
            except ValueError as e:
                if "read-only" not in str(e):
                    raise
                raise RuntimeError(
                    f"{ctx.op_name()}: backward wrote into a read-only array, most likely its incoming gradient "
                    f"(shape {g.shape}), which may also feed other nodes' gradients: backward must return new "
                    f"arrays") from e
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for p, need, pg in zip(ctx.parents, ctx.needs_input_grad, input_grads):
                if not need or pg is None:
                    continue
                if pg.shape != p.shape:
                    raise RuntimeError(
                        f"{ctx.op_name()}: backward returned a gradient of shape {pg.shape} "
                        f"for an input of shape {p.shape}")
                if pg.dtype != p.dtype:
                    pg = pg.astype(p.dtype)
                prev = grads.get(id(p))
                grads[id(p)] = pg if prev is None else prev + pg
            if not retain_graph:
                ctx.release()
                t._ctx = ctx  # keep the freed node so a second backward raises clearly


def _read_only(g):
    """A read-only view of a NumPy gradient, so that a backward writing into it raises at once.

    NOTE: one gradient array can reach several nodes (an add passes its gradient to both inputs,
    a reshape passes a view), so a backward that wrote into its incoming gradient would silently
    corrupt its siblings' gradients. The view leaves the array itself, which the caller may own,
    writeable. CuPy arrays have no such flag and pass through.
    """
    if isinstance(g, np.ndarray):
        g = g.view()
        g.flags.writeable = False
    return g


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
