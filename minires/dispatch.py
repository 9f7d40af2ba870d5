"""The one place that picks how an op runs: its reference Function, or another implementation of it.

Every op has a reference implementation in minires.functional: NumPy/CuPy-generic, the shortest
correct version, which F.conv2d and the other wrappers hand to `call` with the call's inputs. Other
implementations of an op compute the same thing; they come from one table, op name -> Functions in
the order they are tried, given to `install` (minires/__init__ installs the package's own), and each
says through `supports(*arrays, **params)` whether it takes a given call. `call` goes one way down:
autocast's policy sets the inputs' dtype once (minires.amp), the first implementation supporting the
call is chosen once (else the reference), and that Function runs.

`MINIRES_IMPL=reference` in the environment or `set_impl("reference")` runs everything on the
references (the default is "fast": other implementations where they apply); `with use_impl("reference"):`
does it in the calling thread for the block, as `no_grad` and `autocast` do.
"""
from __future__ import annotations

import contextlib
import os
import threading

from . import amp
from .tensor import Function, Tensor

IMPLS = ("fast", "reference")
_impl = None  # the process-wide choice (set_impl, MINIRES_IMPL)
_local = threading.local()  # .impl: use_impl's choice in this thread, or None
_others: dict[str, tuple] = {}  # op name -> other Function classes, in the order they are tried (install)


def _default_impl() -> str:
    name = os.environ.get("MINIRES_IMPL", "fast")
    if name not in IMPLS:
        raise ValueError(f"MINIRES_IMPL must be one of {IMPLS}, got {name!r}")
    return name


def get_impl() -> str:
    """"fast" (fast paths where they apply) or "reference" (every op on its reference), in this thread."""
    global _impl
    local = getattr(_local, "impl", None)
    if local is not None:
        return local
    if _impl is None:
        _impl = _default_impl()
    return _impl


def set_impl(name: str) -> None:
    """Run ops on their fast paths ("fast") or on the reference implementations only ("reference")."""
    global _impl
    if name not in IMPLS:
        raise ValueError(f"set_impl: expected one of {IMPLS}, got {name!r}")
    _impl = name


@contextlib.contextmanager
def use_impl(name: str):
    """Run ops in this thread on `name`'s implementations inside the block (a context manager or decorator)."""
    if name not in IMPLS:
        raise ValueError(f"use_impl: expected one of {IMPLS}, got {name!r}")
    previous = getattr(_local, "impl", None)
    _local.impl = name
    try:
        yield
    finally:
        _local.impl = previous


def install(table) -> None:
    """Take {op name: Function classes, in the order they are tried} as the other implementations of ops.

    Each class subclasses Function and defines `supports(*arrays, **params) -> bool` (a classmethod,
    given the raw arrays of the call's inputs, None where an input is None, and the keyword
    parameters). The table replaces any earlier one.
    """
    checked = {}
    for op, classes in table.items():
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, Function)):
                raise TypeError(f"install: op {op!r} expects Function subclasses, got {cls!r}")
            if not callable(getattr(cls, "supports", None)):
                raise TypeError(f"install: op {op!r}: {cls.__name__} needs a supports(*arrays, **params) classmethod")
        checked[op] = tuple(classes)
    _others.clear()
    _others.update(checked)


def implementations(op: str) -> list:
    """The other implementations installed for `op`, in the order they are tried (the reference is not listed)."""
    return list(_others.get(op, ()))


def _arrays(inputs):
    return [t.array if isinstance(t, Tensor) else t for t in inputs]


def choose(reference, inputs, params):
    """The Function that runs this call: the first other implementation supporting it, else the reference."""
    if get_impl() == "reference":
        return reference
    arrays = _arrays(inputs)
    for cls in _others.get(reference.op_name(), ()):
        if cls.supports(*arrays, **params):
            return cls
    return reference


def call(reference, *inputs, **params):
    """Run op `reference` on inputs (Tensors, or None for an absent optional input) with params.

    Under autocast, the op's policy (minires.amp.POLICY) first casts the inputs to the dtype it computes
    in; ops not in the table run in the dtype they get. The implementation is then chosen for those inputs.
    """
    inputs = amp.autocast_inputs(reference.op_name(), inputs)
    return choose(reference, inputs, params).apply(*inputs, **params)


__all__ = ["IMPLS", "get_impl", "set_impl", "use_impl", "install", "implementations", "choose", "call"]
