"""In-place writes: zero_, fill_, copy_, add_, sub_, mul_, div_, clamp_ and t[index] = value, outside the graph."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor, is_grad_enabled

# NOTE: there is no version counter as in PyTorch: an in-place write into an array that a graph node
# saved (x in y = x * w, with only w requiring grad) is not detected.


def _check_inplace(x, op, *others):
    if not is_grad_enabled():
        return
    if x.requires_grad:
        raise RuntimeError(f"{op}: cannot modify a tensor that requires grad in place (shape {x.shape}): "
                           f"autograd would differentiate through overwritten values; do it inside "
                           f"mr.no_grad() or on t.detach()")
    if any(isinstance(o, Tensor) and o.requires_grad for o in others):
        raise RuntimeError(f"{op}: an in-place op does not record a graph, so its other operand must not "
                           f"require grad; do it inside mr.no_grad() or pass .detach()")


def _operand(x, op, value, move=False):
    """A raw array or number to write into x's data; Tensors on another device move only if `move`."""
    if isinstance(value, Tensor):
        if value.device != x.device and not move:
            raise ValueError(f"{op}: the operand is on {value.device} but the tensor is on {x.device}")
        return backend.to_device(value.array, x.device) if value.device != x.device else value.array
    if isinstance(value, (numbers.Number, np.generic)):
        return value
    if isinstance(value, np.ndarray) or backend.get_array_module(value) is not np:
        return backend.to_device(value, x.device)
    raise TypeError(f"{op}: expected a number or a Tensor, got {type(value).__name__}")


def _broadcasts_to(shape, target) -> bool:
    try:
        return np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False


def _write(x, op, fn, value_shape=()):
    if not _broadcasts_to(tuple(value_shape), x.shape):
        raise ValueError(f"{op}: an operand of shape {tuple(value_shape)} cannot be broadcast to the tensor's "
                         f"shape {x.shape}")
    if not getattr(getattr(x.array, "flags", None), "writeable", True):  # CuPy's flags have no writeable
        raise RuntimeError(f"{op}: the tensor (shape {x.shape}) is read-only (a broadcast view from expand, "
                           f"or read-only memory); clone() it first")
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
    _check_inplace(x, op, value)
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{op}: value must be a number or a one-element tensor, got shape {value.shape}")
        value = value.item()
    if not isinstance(value, (numbers.Number, np.generic)):
        raise TypeError(f"{op}: value must be a number, got {type(value).__name__}")

    def fill(d):
        d[...] = value
    return _write(x, op, fill)


def copy_(self, src):
    """Copy src's values (broadcast, cast, moved across devices) into this tensor; returns self."""
    _check_inplace(self, "copy_", src)
    data = _operand(self, "copy_", src, move=True)

    def copy(d):
        d[...] = data
    return _write(self, "copy_", copy, getattr(data, "shape", ()))


def add_(self, other, alpha=1):
    """self += alpha * other in place (other broadcast to self's shape); returns self."""
    _check_inplace(self, "add_", other)
    data = _operand(self, "add_", other)
    if not isinstance(alpha, (numbers.Number, np.generic)) or isinstance(alpha, (bool, np.bool_)):
        raise TypeError(f"add_: alpha must be a number, got {alpha!r}")

    def add(d):
        d += data if alpha == 1 else data * alpha
    return _write(self, "add_", add, getattr(data, "shape", ()))


def mul_(self, other):
    """self *= other in place (other broadcast to self's shape); returns self."""
    _check_inplace(self, "mul_", other)
    data = _operand(self, "mul_", other)

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
    _check_inplace(self, "div_", other)
    data = _operand(self, "div_", other)

    def div(d):
        d /= data
    return _write(self, "div_", div, getattr(data, "shape", ()))


def clamp_(self, min=None, max=None):
    """Limit the values to [min, max] in place (numbers; either may be None); returns self."""
    _check_inplace(self, "clamp_")
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
    _check_inplace(self, "setitem", value)
    data = _operand(self, "setitem", value, move=True)
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(_operand(self, "setitem", i, move=True) if isinstance(i, Tensor) else i for i in items)
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
        if self.requires_grad and self._ctx is None and is_grad_enabled():
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
