"""PyTorch's torch.autograd: grad(), backward(), Variable (the identity), Function in PyTorch's style
(static forward/backward on Tensors with a ctx), and the grad-mode switches.

minires's backward walk runs on raw arrays and records no graph of its own, so there are no gradients
of gradients: grad(create_graph=True) raises NotImplementedError.
"""
from __future__ import annotations

from .backend import get_array_module
from .gradcheck import gradcheck
from .grad_mode import _GradMode, enable_grad, is_grad_enabled, no_grad
from .tensor import Function as _Function
from .tensor import Tensor, run_backward


class inference_mode(no_grad):
    """Context manager (or decorator, bare or called) for evaluation: no_grad here; mode=False does nothing."""

    def __new__(cls, mode=True):
        if callable(mode):  # @mr.inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True):
        super().__init__()
        self.mode = bool(mode)

    def __enter__(self):
        if self.mode:
            super().__enter__()

    def __exit__(self, *exc):
        if self.mode:
            super().__exit__(*exc)

    def __call__(self, fn):
        return super().__call__(fn) if self.mode else fn


class set_grad_enabled(_GradMode):
    """Turn graph recording on or off: at once when called, until the block ends as a context manager."""

    def __init__(self, mode: bool):
        super().__init__(bool(mode))
        _GradMode.__enter__(self)  # as torch: the call itself switches the mode

    def __enter__(self):
        pass

    def __call__(self, fn):  # as a decorator, switch only while fn runs
        _GradMode.__exit__(self)
        return super().__call__(fn)


# ---- grad and backward -------------------------------------------------------------------------------

def _tensors(op: str, name: str, value, allow_none=False) -> list:
    items = [value] if isinstance(value, Tensor) or value is None else list(value)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor) and not (allow_none and t is None):
            raise TypeError(f"{op}: '{name}' must be a Tensor or a sequence of Tensors, got {type(t).__name__} "
                            f"at position {i}")
    return items


def _seed(op: str, k: int, y: Tensor, gy):
    """The gradient that starts the walk at output k: ones for a one-element output, else gy's array."""
    if not y.requires_grad:
        raise RuntimeError(f"{op}: output {k} (shape {y.shape}) does not require grad and has no graph")
    if gy is None:
        if y.array.size != 1:
            raise RuntimeError(f"{op}: grad can be implicitly created only for one-element outputs; output {k} "
                               f"has shape {y.shape}: pass grad_outputs")
        return get_array_module(y.array).ones_like(y.array)
    g = gy.array if isinstance(gy, Tensor) else gy
    if tuple(getattr(g, "shape", ())) != y.shape:
        raise ValueError(f"{op}: grad_outputs[{k}] has shape {tuple(getattr(g, 'shape', ()))}, output {k} has "
                         f"shape {y.shape}")
    return g.astype(y.dtype, copy=False)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of outputs with respect to inputs (a tuple, one per input), leaving every .grad as it is."""
    if create_graph:
        raise NotImplementedError("grad: create_graph=True (gradients of gradients) is not supported: minires's "
                                  "backward runs on raw arrays and records no graph of its own")
    if is_grads_batched:
        raise NotImplementedError("grad: is_grads_batched=True is not supported")
    outputs, inputs = _tensors("grad", "outputs", outputs), _tensors("grad", "inputs", inputs)
    grad_outputs = ([None] * len(outputs) if grad_outputs is None
                    else _tensors("grad", "grad_outputs", grad_outputs, allow_none=True))
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs given for {len(outputs)} outputs")
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {x.shape}) does not require grad")
    seeds = [_seed("grad", k, y, gy) for k, (y, gy) in enumerate(zip(outputs, grad_outputs))]
    found = run_backward(outputs, seeds, bool(retain_graph), wanted={id(x): i for i, x in enumerate(inputs)})
    result = []
    for i, x in enumerate(inputs):
        if i in found:
            result.append(Tensor(found[i].copy()))
        elif materialize_grads:
            result.append(Tensor(get_array_module(x.array).zeros_like(x.array)))
        elif allow_unused:
            result.append(None)
        else:
            raise RuntimeError(f"grad: input {i} (shape {x.shape}) was not used to compute the outputs; pass "
                               f"allow_unused=True to get None for it")
    return tuple(result)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None) -> None:
    """Accumulate into every leaf's .grad the gradient of the sum of tensors (weighted by grad_tensors)."""
    if create_graph:
        raise NotImplementedError("backward: create_graph=True (gradients of gradients) is not supported")
    if inputs is not None:
        raise NotImplementedError("backward: inputs= is not supported; use autograd.grad(outputs, inputs)")
    tensors = _tensors("backward", "tensors", tensors)
    grads = [None] * len(tensors) if grad_tensors is None else _tensors("backward", "grad_tensors", grad_tensors,
                                                                         allow_none=True)
    if len(grads) != len(tensors):
        raise ValueError(f"backward: {len(grads)} grad_tensors given for {len(tensors)} tensors")
    seeds = [_seed("backward", k, y, g) for k, (y, g) in enumerate(zip(tensors, grads))]
    run_backward(tensors, seeds, bool(retain_graph))


# ---- Variable and PyTorch-style Functions ----------------------------------------------------------------

class _VariableType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableType):
    """PyTorch's old Variable, the identity now as there: Variable(t) is t; requires_grad=True sets the flag."""

    def __new__(cls, data, requires_grad: bool = False, volatile: bool = False):
        t = data if isinstance(data, Tensor) else Tensor(data)
        if requires_grad:
            t.requires_grad_(True)
        return t


class _Adapter(_Function):
    """A PyTorch-style Function run as a minires one: the instance is the user's ctx."""
    user = None

    def forward(self, *arrays):
        self.saved_tensors = ()
        args = [Tensor(a) if hasattr(a, "shape") and hasattr(a, "dtype") else a for a in arrays]
        with no_grad():
            out = self.user.forward(self, *args)
        if not isinstance(out, Tensor):
            raise NotImplementedError(f"{self.op_name()}: forward must return one Tensor (several outputs are "
                                      f"not supported), got {type(out).__name__}")
        return out.array

    def backward(self, g):
        with no_grad():
            grads = self.user.backward(self, Tensor(g))
        grads = grads if isinstance(grads, tuple) else (grads,)
        n = len(self.parents)
        if len(grads) < n or any(x is not None for x in grads[n:]):  # as PyTorch: one per forward input
            raise RuntimeError(f"{self.op_name()}: backward returned an incorrect number of gradients (expected "
                               f"{n}, one per forward input with None for non-Tensors, got {len(grads)})")
        return tuple(x.array if isinstance(x, Tensor) else x for x in grads[:n])

    def save_for_backward(self, *tensors) -> None:
        self.saved_tensors = tuple(tensors)

    def mark_non_differentiable(self, *tensors) -> None:
        """Accepted; the outputs of a minires op carry no gradient unless an input requires one."""

    def set_materialize_grads(self, value: bool) -> None:
        """Accepted: backward always receives a gradient array here."""


class Function:
    """PyTorch's torch.autograd.Function: subclass it with static forward(ctx, *args) and backward(ctx, *grads)
    on Tensors (ctx.save_for_backward, ctx.saved_tensors, ctx.needs_input_grad) and call Cls.apply(*args)."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("autograd.Function: define a static forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("autograd.Function: define a static backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args):
        adapter = cls.__dict__.get("_minires_adapter")
        if adapter is None:  # one minires Function class per user class, named after it for error messages
            adapter = type(cls.__name__, (_Adapter,), {"user": cls, "name": cls.__name__})
            cls._minires_adapter = adapter
        return adapter.apply(*args)


__all__ = ["Function", "Variable", "backward", "enable_grad", "grad", "gradcheck", "inference_mode",
           "is_grad_enabled", "no_grad", "set_grad_enabled"]
