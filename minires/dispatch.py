"""The one place that picks how an op runs: its reference Function, or a fast path registered beside it.

Every op has a reference implementation in minires.functional: NumPy/CuPy-generic, the shortest
correct version. Fast paths (threaded CPU kernels in minires.kernels.cpu, CUDA kernels in
minires.kernels.cuda) are other Functions computing the same thing; each registers under the op's
name with `@register("conv2d")` and says, from the arrays and parameters of a call, whether it
`supports` that call. `call` applies autocast's policy (minires.amp.POLICY) to the inputs, then
runs the first fast path that supports the call, else the reference.

`MINIRES_IMPL=reference` in the environment or `set_impl("reference")` runs everything on the
references (the default is "fast"); `with use_impl("reference"):` does it in the calling thread for the
block, as `no_grad` and `autocast` do.
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
_fast: dict[str, list] = {}  # op name -> fast Function classes, in the order they are tried


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


def register(op: str):
    """Class decorator: a fast Function for `op`, tried (in registration order) before the reference.

    The class defines `supports(*arrays, **params) -> bool` (a classmethod, given the raw arrays of
    the call's inputs, None where an input is None, and the keyword parameters).
    """
    def add(cls):
        if not (isinstance(cls, type) and issubclass(cls, Function)):
            raise TypeError(f"register({op!r}): expected a Function subclass, got {cls!r}")
        if not callable(getattr(cls, "supports", None)):
            raise TypeError(f"register({op!r}): {cls.__name__} needs a supports(*arrays, **params) classmethod")
        _fast.setdefault(op, []).append(cls)
        return cls
    return add


def implementations(op: str) -> list:
    """The fast Functions registered for `op` (the reference is not listed)."""
    return list(_fast.get(op, ()))


def _arrays(inputs):
    return [t.array if isinstance(t, Tensor) else t for t in inputs]


def choose(reference, inputs, params):
    """The Function that runs this call: the first fast path supporting it, else the reference."""
    if get_impl() == "reference":
        return reference
    arrays = _arrays(inputs)
    for cls in _fast.get(reference.op_name(), ()):
        if cls.supports(*arrays, **params):
            return cls
    return reference


def call(reference, *inputs, **params):
    """Run op `reference` on inputs (Tensors, or None for an absent optional input) with params.

    Under autocast, POLICY[op] first sets the compute dtype: "float16" casts float32 inputs down,
    "float32" widens float16 inputs, unless the chosen fast path takes float16 as it is
    (`keeps_float16 = True`, batch norm's CUDA kernels); ops not in the table run in the dtype they get.
    """
    rule = amp.policy(reference.op_name())
    if rule == "float16":
        inputs = amp.lower(inputs)
    cls = choose(reference, inputs, params)
    if rule == "float32" and not getattr(cls, "keeps_float16", False):
        widened = amp.widen(inputs)
        if widened is not inputs:
            inputs, cls = widened, choose(reference, widened, params)
    return cls.apply(*inputs, **params)


__all__ = ["IMPLS", "get_impl", "set_impl", "use_impl", "register", "implementations", "choose", "call"]
