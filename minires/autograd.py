"""Reverse-mode autograd: the Function base class, grad mode, and the backward walk."""
from __future__ import annotations

import threading

import numpy as np

from . import backend

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
        from .tensor import Tensor

        tensors = [t for t in inputs if isinstance(t, Tensor)]
        _check_same_device_and_dtype(cls.op_name(), tensors, cls.mixed_float_dtypes)
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


def _check_same_device_and_dtype(op: str, tensors, mixed_floats: bool = False) -> None:
    if len(tensors) < 2:
        return
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        shapes = ", ".join(f"{tuple(t.shape)} on {t.device}" for t in tensors)
        raise ValueError(f"{op}: all tensors must be on one device, got {shapes}")
    floats = {t.dtype for t in tensors if t.dtype.kind in "fc"}
    if len(floats) > 1 and not mixed_floats:
        shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in tensors if t.dtype.kind in "fc")
        raise TypeError(f"{op}: floating-point inputs must share one dtype, got {shapes}")


def _topological_order(root):
    """Tensors reachable from root that need grad, children before parents (iterative DFS)."""
    from .tensor import Tensor

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
    from .tensor import Tensor

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


__all__ = ["Function", "no_grad", "enable_grad", "is_grad_enabled", "run_backward", "unbroadcast",
           "backend", "np"]
