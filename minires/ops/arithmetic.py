"""Element-wise ops: arithmetic with broadcasting, exp/log/sqrt/abs, maximum/minimum, clamp, where,
and the comparisons (non-differentiable boolean tensors)."""
from __future__ import annotations

import numbers
import operator

import numpy as np

from .. import _validate, backend, dispatch
from ..backend import get_array_module
from ..creation import tensor as new_tensor
from ..tensor import Function, Tensor, check_same_device_and_dtype, float32, unbroadcast


def grad_for(g, shape, dtype):
    """The gradient of a broadcast input: g summed down to its shape, in its dtype.

    NOTE: an integer and a float operand compute in NumPy's promoted dtype (int32 + float16 gives
    float64), so the float input's gradient is cast back to its own dtype.
    """
    return unbroadcast(g, shape).astype(dtype, copy=False)


class Add(Function):
    def forward(self, a, b):
        self.a_like, self.b_like = (a.shape, a.dtype), (b.shape, b.dtype)
        return a + b

    def backward(self, g):
        return grad_for(g, *self.a_like), grad_for(g, *self.b_like)


class Sub(Function):
    def forward(self, a, b):
        self.a_like, self.b_like = (a.shape, a.dtype), (b.shape, b.dtype)
        return a - b

    def backward(self, g):
        return grad_for(g, *self.a_like), grad_for(-g, *self.b_like)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        da = grad_for(g * b, a.shape, a.dtype) if self.needs_input_grad[0] else None
        db = grad_for(g * a, b.shape, b.dtype) if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        da = grad_for(g / b, a.shape, a.dtype) if self.needs_input_grad[0] else None
        db = grad_for(-g * a / (b * b), b.shape, b.dtype) if self.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        xp = get_array_module(g)
        a, b = self.a, self.b
        da = db = None
        if self.needs_input_grad[0]:
            da = grad_for(g * b * a ** (b - 1), a.shape, a.dtype)
        if self.needs_input_grad[1]:
            # NOTE: d(a^b)/db = a^b log a; taken as 0 where a == 0 (PyTorch's convention).
            log_a = xp.log(xp.where(a > 0, a, 1))
            db = grad_for(g * self.out * log_a, b.shape, b.dtype)
        return da, db


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        # Promote 1-D operands to matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = g2[..., None, :] if b.ndim > 1 else g2[..., None]
        if b.ndim == 1:
            g2 = g2[..., None]
        da = db = None
        if self.needs_input_grad[0]:
            da = g2 @ b2.swapaxes(-1, -2)  # (..., M, K)
            da = grad_for(da, a2.shape, a.dtype).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = a2.swapaxes(-1, -2) @ g2  # (..., K, N)
            db = grad_for(db, b2.shape, b.dtype).reshape(b.shape)
        return da, db


class Exp(Function):
    def forward(self, a):
        self.out = get_array_module(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return get_array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = get_array_module(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return abs(a)

    def backward(self, g):
        return g * get_array_module(g).sign(self.a)


class Maximum(Function):
    """Elementwise larger of two broadcast tensors."""

    larger = True

    def forward(self, a, b):
        self.a, self.b = a, b
        xp = get_array_module(a, b)
        return xp.maximum(a, b) if self.larger else xp.minimum(a, b)

    def backward(self, g):
        xp = get_array_module(g)
        a, b = self.a, self.b
        # NOTE: a tie sends half the gradient to each input, as PyTorch's maximum/minimum do.
        share = xp.where((a > b) if self.larger else (a < b), 1.0, xp.where(a == b, 0.5, 0.0)).astype(g.dtype)
        da = grad_for(g * share, a.shape, a.dtype) if self.needs_input_grad[0] else None
        db = grad_for(g * (1 - share), b.shape, b.dtype) if self.needs_input_grad[1] else None
        return da, db


class Minimum(Maximum):
    """Elementwise smaller of two broadcast tensors."""

    larger = False


class Clamp(Function):
    """x limited to [lo, hi] (either may be None; numbers or broadcast arrays), as torch.clamp."""

    name = "clamp"

    def forward(self, x, lo=None, hi=None):
        xp = get_array_module(x, *[v for v in (lo, hi) if v is not None])
        self.x, self.lo, self.hi = x, lo, hi
        out = x if lo is None else xp.maximum(x, lo)
        return out if hi is None else xp.minimum(out, hi)  # lo > hi gives hi, as PyTorch

    def backward(self, g):
        xp = get_array_module(g)
        x, lo, hi = self.x, self.lo, self.hi
        zero = xp.zeros((), dtype=g.dtype)
        # PyTorch's rule: x gets the gradient where lo <= x <= hi (ends included); a bound where it wins.
        inside = xp.ones(g.shape, dtype=bool)
        if lo is not None:
            inside = inside & (x >= lo)
        if hi is not None:
            inside = inside & (x <= hi)
        dx = grad_for(xp.where(inside, g, zero), x.shape, x.dtype) if self.needs_input_grad[0] else None
        dlo = dhi = None
        if self.needs_input_grad[1]:
            wins = (x < lo) if hi is None else (x < lo) & (lo < hi)
            dlo = grad_for(xp.where(wins, g, zero), lo.shape, lo.dtype)
        if self.needs_input_grad[2]:
            wins = (x > hi) if lo is None else (x > hi) | (hi < lo)
            dhi = grad_for(xp.where(wins, g, zero), hi.shape, hi.dtype)
        return dx, dlo, dhi


class Where(Function):
    """cond ? a : b elementwise, all three broadcast; the gradient goes to the branch taken."""

    def forward(self, cond, a, b):
        self.cond, self.a_like, self.b_like = cond, (a.shape, a.dtype), (b.shape, b.dtype)
        return get_array_module(cond, a, b).where(cond, a, b)

    def backward(self, g):
        xp = get_array_module(g)
        zero = xp.zeros((), dtype=g.dtype)
        da = grad_for(xp.where(self.cond, g, zero), *self.a_like) if self.needs_input_grad[1] else None
        db = grad_for(xp.where(self.cond, zero, g), *self.b_like) if self.needs_input_grad[2] else None
        return None, da, db


# ---- Tensor methods (bound in minires/ops/__init__.py) -----------------------------------------------

def operand(x, other, op: str = "tensor op") -> Tensor:
    """`other` as a Tensor beside x: numbers take x's dtype (float32 for a float beside an integer x)."""
    if isinstance(other, Tensor):
        return other
    if isinstance(other, (numbers.Number, np.generic)):
        xp = backend.get_array_module(x.array)
        integral = isinstance(other, (numbers.Integral, np.integer))
        # PyTorch: a float beside an integer tensor is float32; an int (not a bool) beside a bool tensor is int64
        dtype = (x.dtype if x.dtype.kind in "fc" or integral and (x.dtype.kind != "b" or isinstance(other, bool))
                 else np.dtype(np.int64) if integral else float32)
        return Tensor(xp.asarray(other, dtype=dtype))
    if isinstance(other, np.ndarray) or backend.get_array_module(other) is not np:
        return Tensor(other)
    raise TypeError(f"{op}: unsupported operand type {type(other).__name__} for a Tensor operation")


def binary_methods(function, dunder: str | None = None):
    """Tensor.__op__ and __rop__ for a two-input Function: a number or array operand becomes a Tensor."""
    op = function.op_name()
    dunder = dunder or op
    check = _validate.matmul_shapes if function is MatMul else _validate.broadcast_pair

    def checked(a, b):
        check_same_device_and_dtype(function, (a, b))  # NOTE: a dtype mismatch is named before the shapes
        check(op, a, b)
        return function.apply(a, b)

    def method(self, other):
        return checked(self, operand(self, other, op))

    def reflected(self, other):
        return checked(operand(self, other, op), self)
    method.__name__, reflected.__name__ = f"__{dunder}__", f"__r{dunder}__"
    return method, reflected


def comparison(op: str, compare):
    """Tensor.__eq__ and friends: a boolean tensor outside the graph."""
    def method(self, other):
        other = operand(self, other, op)
        _validate.broadcast_shape(op, self.shape, other.shape)
        if op not in ("eq", "ne") and "c" in (self.dtype.kind, other.dtype.kind):
            raise TypeError(f"{op}: complex numbers have no order (dtypes {self.dtype} and {other.dtype})")
        return Tensor(compare(self.array, other.array))
    method.__name__ = f"__{op}__"
    return method


COMPARISONS = {f"__{op}__": comparison(op, getattr(operator, op)) for op in ("eq", "ne", "lt", "le", "gt", "ge")}


def neg(self):
    if self.dtype.kind == "b":
        raise TypeError(f"neg: negation of a bool tensor (shape {self.shape}) is not supported; use ~ or 1 - x")
    return Neg.apply(self)


def clamp(self, min=None, max=None):
    """Values limited to [min, max] (numbers or broadcastable tensors; either may be None)."""
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not isinstance(bound, (Tensor, numbers.Real, np.generic)):
            raise TypeError(f"clamp: argument '{name}' must be a number, a Tensor or None, "
                            f"got {type(bound).__name__}")
    if min is None and max is None:
        raise ValueError(f"clamp: at least one of min and max must be given (input shape {self.shape})")
    check_same_device_and_dtype(Clamp, (self, min, max))  # a dtype mismatch is named before shapes
    shapes = [tuple(getattr(v, "shape", ())) for v in (self, min, max) if v is not None]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"clamp: input, min and max shapes {shapes} cannot be broadcast together") from None
    return dispatch.call(Clamp, self, min, max)


# ---- functional forms: mr.where, mr.maximum, mr.exp, ... ----------------------------------------------

def where(condition, input=None, other=None):
    """input where condition is True, else other (tensors or numbers, broadcast); with the condition
    alone, the tuple of index tensors of its True elements, as torch.where."""
    cond = _validate.any_tensor("where", "condition", condition)
    if cond.dtype.kind != "b":
        raise TypeError(f"where: argument 'condition' must be a bool tensor, got dtype {cond.dtype}")
    if input is None and other is None:
        return tuple(Tensor(i) for i in cond.array.nonzero())
    if input is None or other is None:
        raise TypeError("where: give both input and other, or neither")
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        dtype = new_tensor([input, other]).dtype  # two numbers: float32 if either is a float, as PyTorch
        input, other = (new_tensor(v, dtype=dtype, device=cond.device) for v in (input, other))
    elif not isinstance(input, Tensor):
        input = operand(other, input, "where")
    elif not isinstance(other, Tensor):
        other = operand(input, other, "where")
    check_same_device_and_dtype(Where, (cond, input, other))
    try:
        np.broadcast_shapes(cond.shape, input.shape, other.shape)
    except ValueError:
        raise ValueError(f"where: condition {tuple(cond.shape)}, input {tuple(input.shape)} and other "
                         f"{tuple(other.shape)} cannot be broadcast together") from None
    return Where.apply(cond, input, other)


def maximum(input, other):
    """Elementwise maximum of two broadcast tensors (ties share the gradient)."""
    x = _validate.any_tensor("maximum", "input", input)
    other = operand(x, other, "maximum")
    check_same_device_and_dtype(Maximum, (x, other))
    _validate.broadcast_pair("maximum", x, other)
    return Maximum.apply(x, other)


def minimum(input, other):
    """Elementwise minimum of two broadcast tensors (ties share the gradient)."""
    x = _validate.any_tensor("minimum", "input", input)
    other = operand(x, other, "minimum")
    check_same_device_and_dtype(Minimum, (x, other))
    _validate.broadcast_pair("minimum", x, other)
    return Minimum.apply(x, other)


def exp(input):
    """Elementwise e**x."""
    return Exp.apply(_validate.any_tensor("exp", "input", input))


def log(input):
    """Elementwise natural logarithm."""
    return Log.apply(_validate.any_tensor("log", "input", input))


def sqrt(input):
    """Elementwise square root."""
    return Sqrt.apply(_validate.any_tensor("sqrt", "input", input))


def absolute(input):
    """Elementwise absolute value."""
    return Abs.apply(_validate.any_tensor("abs", "input", input))


def equal(self, other) -> bool:
    """True if other is a tensor of the same shape and values, as torch.equal."""
    other = _validate.any_tensor("equal", "other", other)
    return self.shape == other.shape and bool((self.array == other.array).all())
