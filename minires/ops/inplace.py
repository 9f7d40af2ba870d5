"""In-place writes: zero_, fill_, copy_, add_, sub_, mul_, div_, clamp_ and t[index] = value, outside the graph."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _validate, backend
from ..tensor import Tensor, is_grad_enabled

# NOTE: there is no version counter as in PyTorch: an in-place write into an array that a graph node
# saved (x in y = x * w, with only w requiring grad) is not detected.


def _write(x, op, fn, value_shape=()):
    """fn(x's array) after _validate.writable's checks; NumPy's own error reworded to name op and x."""
    _validate.writable(op, x, value_shape)
    try:
        fn(x.array)
    except (TypeError, ValueError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError  # not NumPy's own subclasses
        raise kind(f"{op}: cannot write into a {x.dtype} tensor of shape {x.shape} "
                   f"({str(exc).splitlines()[0]})") from None
    return x


def zero_(self):
    """Fill with zeros in place; returns self."""
    return _fill(self, "zero_", 0)


def fill_(self, value):
    """Fill with one number (or one-element tensor) in place; returns self."""
    return _fill(self, "fill_", value)


def _fill(x, op, value):
    _validate.inplace_target(op, x, value)
    value = _validate.fill_value(op, value)

    def fill(d):
        d[...] = value
    return _write(x, op, fill)


def copy_(self, src):
    """Copy src's values (broadcast, cast, moved across devices) into this tensor; returns self."""
    _validate.inplace_target("copy_", self, src)
    data = _validate.inplace_operand("copy_", self, src, move=True)

    def copy(d):
        d[...] = data
    return _write(self, "copy_", copy, getattr(data, "shape", ()))


def add_(self, other, alpha=1):
    """self += alpha * other in place (other broadcast to self's shape); returns self."""
    _validate.inplace_target("add_", self, other)
    data = _validate.inplace_operand("add_", self, other)
    if not isinstance(alpha, (numbers.Number, np.generic)) or isinstance(alpha, (bool, np.bool_)):
        raise TypeError(f"add_: alpha must be a number, got {alpha!r}")

    def add(d):
        d += data if alpha == 1 else data * alpha
    return _write(self, "add_", add, getattr(data, "shape", ()))


def mul_(self, other):
    """self *= other in place (other broadcast to self's shape); returns self."""
    _validate.inplace_target("mul_", self, other)
    data = _validate.inplace_operand("mul_", self, other)

    def mul(d):
        d *= data
    return _write(self, "mul_", mul, getattr(data, "shape", ()))


def sub_(self, other, alpha=1):
    """self -= alpha * other in place; returns self."""
    if not isinstance(alpha, (numbers.Number, np.generic)) or isinstance(alpha, (bool, np.bool_)):
        raise TypeError(f"sub_: alpha must be a number, got {alpha!r}")
    return self.add_(other, alpha=-alpha)


def div_(self, other):
    """self /= other in place (a float tensor; other broadcast to self's shape); returns self."""
    _validate.inplace_target("div_", self, other)
    data = _validate.inplace_operand("div_", self, other)

    def div(d):
        d /= data
    return _write(self, "div_", div, getattr(data, "shape", ()))


def clamp_(self, min=None, max=None):
    """Limit the values to [min, max] in place (numbers; either may be None); returns self."""
    _validate.inplace_target("clamp_", self)
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and not isinstance(bound, (numbers.Real, np.generic)):
            raise TypeError(f"clamp_: argument '{name}' must be a number or None, got {type(bound).__name__}")
    if min is None and max is None:
        raise ValueError("clamp_: give at least one of min and max")

    def clip(d):
        backend.get_array_module(d).clip(d, min, max, out=d)
    return _write(self, "clamp_", clip)


def setitem(self, index, value):
    """t[index] = value with NumPy's indexing; like every in-place op, only outside the graph."""
    _validate.inplace_target("setitem", self, value)
    data = _validate.inplace_operand("setitem", self, value, move=True)
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(_validate.inplace_operand("setitem", self, i, move=True) if isinstance(i, Tensor) else i
                  for i in items)
    index = items if isinstance(index, tuple) else items[0]

    def assign(d):
        d[index] = data
    try:
        _write(self, "setitem", assign)
    except IndexError as exc:
        raise IndexError(f"setitem: index {index!r} is invalid for shape {self.shape} ({exc})") from None


def augmented(binary):
    """t += other (and -=, *=, /=) as PyTorch's in-place operators: outside the graph (under mr.no_grad(), or
    on tensors that need no gradient) the result is written into t's own array, so `p -= lr * p.grad` on a
    parameter updates the parameter, and t is returned. Where autograd records the op, or the result does not
    fit t (a broadcast that grows it, a wider dtype, a read-only view), t is rebound to the new tensor; a leaf
    that requires grad is refused there, as in PyTorch (`w -= lr * w.grad` outside no_grad())."""
    def method(self, other):
        if self.requires_grad and self.grad_fn is None and is_grad_enabled():
            raise RuntimeError(f"{method.__name__}: a leaf tensor that requires grad (shape {self.shape}) is used in "
                               f"an in-place operation; update parameters inside mr.no_grad()")
        out = binary(self, other)
        if out.requires_grad or out.shape != self.shape or out.dtype != self.dtype \
                or not getattr(getattr(self.array, "flags", None), "writeable", True):
            return out
        self.array[...] = out.array
        return self
    method.__name__ = f"__i{binary.__name__.strip('_')}__"
    return method
