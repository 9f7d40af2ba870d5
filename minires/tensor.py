"""The autograd engine: Tensor (an ndarray, NumPy or CuPy, with a graph node), Function, and the backward walk.

Tensor here holds the data, the graph link and the backward entry point. Its operators and
methods that run ops (t + u, t.sum(), t.reshape(...), t.to(...), in-place writes) are defined in
minires.ops beside their Functions and bound onto Tensor once, when minires.ops is imported;
t.relu()/sigmoid()/tanh() are bound from above minires.functional by minires/__init__.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .grad_mode import enable_grad, is_grad_enabled, no_grad

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


class Tensor:
    """An n-dimensional array on the CPU or a GPU that records the ops applied to it."""

    __array_priority__ = 1000  # make `ndarray + Tensor` defer to Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.array
        if not hasattr(data, "dtype") or not hasattr(data, "shape") or np.isscalar(data):  # NumPy scalars too
            data = np.asarray(data)
        self.array = data
        self.grad = None
        self.grad_fn = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- properties -------------------------------------------------------------------------
    # `array` is the raw NumPy/CuPy array; `data` is PyTorch's: a Tensor sharing it, outside the graph.
    @property
    def data(self) -> "Tensor":
        """This tensor's values as a new leaf that shares its array and records nothing (PyTorch's .data)."""
        return Tensor(self.array)

    @data.setter
    def data(self, value):
        value = value.array if isinstance(value, Tensor) else value
        if not hasattr(value, "dtype") or not hasattr(value, "shape"):
            raise TypeError(f"data: expected a Tensor or an array, got {type(value).__name__}")
        self.array = value

    @property
    def shape(self):
        return tuple(self.array.shape)

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def device(self) -> str:
        return backend.device_of(self.array)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.array.size)

    def __bool__(self):
        if self.array.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with {self.array.size} elements is ambiguous")
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
        body = np.array2string(backend.to_numpy(self.array), separator=", ", threshold=50, precision=4)
        return f"tensor({body}, dtype={self.dtype}{extra}{grad})"

    # ---- leaving the graph --------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True):
        if flag and self.dtype.kind not in "fc":
            raise TypeError(f"requires_grad: only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed)."""
        for observer in observers:  # item(), tolist(), bool(t), int(t) and float(t) all come here
            observer.leaves_graph(self)
        return backend.to_numpy(self.array)

    def tolist(self):
        return self.numpy().tolist()

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted to a Python scalar, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor(self.array)

    # ---- autograd -----------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Accumulate the gradient of this tensor into the `.grad` of every leaf it depends on."""
        if create_graph or inputs is not None:  # no graph of gradients: see minires.autograd
            raise NotImplementedError("backward: create_graph=True and inputs= are not supported")
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        xp = backend.get_array_module(self.array)
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs, got shape {self.shape}")
            g = xp.ones_like(self.array)
        else:
            if isinstance(gradient, Tensor) and gradient.device != self.device:
                raise ValueError(f"backward: grad is on {gradient.device} but the tensor is on {self.device}")
            try:
                g = gradient.array if isinstance(gradient, Tensor) else xp.asarray(gradient, dtype=self.dtype)
            except (ValueError, TypeError):
                raise TypeError(f"backward: grad must be a Tensor or an array of numbers of shape {self.shape}, "
                                f"got {type(gradient).__name__}") from None
            if g.shape != self.array.shape:
                raise ValueError(f"backward: grad of shape {tuple(g.shape)} does not match the tensor's shape {self.shape}")
            g = g.astype(self.dtype, copy=False)
        run_backward([self], [g], retain_graph=bool(retain_graph))

    def zero_grad(self) -> None:
        self.grad = None


# ---- Function ------------------------------------------------------------------------------------

# Observers of a recording (minires.onnx's export): each is told of every op applied, `op(cls, inputs,
# params, result)`, and of every tensor whose values leave for Python, `leaves_graph(tensor)`. Empty
# outside a recording.
observers: list = []

class Function:
    """One differentiable op: `forward(*arrays, **params)` and `backward(grad)` on raw arrays.

    A subclass saves what backward needs on `self`; backward returns one gradient (or None)
    per positional input of forward, of that input's shape and dtype. `apply` wraps arrays in
    Tensors and links the graph. backward must not write into its incoming gradient (it arrives
    read-only on NumPy).
    """

    name = None  # op name used in error messages; defaults to the lower-cased class name
    input_names = ()  # names of forward's positional inputs, for error messages ("input", "weight", ...)

    def __init__(self):
        self.parents = ()
        self.needs_input_grad = ()
        self.freed = False

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def op_name(cls) -> str:
        return cls.name or cls.__name__.lower()

    @classmethod
    def input_name(cls, i: int) -> str:
        """The name of forward's positional input i, for error messages."""
        return cls.input_names[i] if i < len(cls.input_names) else f"input {i}"

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays and, when needed, record the node for backward."""
        tensors = [t for t in inputs if isinstance(t, Tensor)]
        check_same_device_and_dtype(cls, inputs)
        ctx = cls()
        requires_grad = is_grad_enabled() and any(t.requires_grad for t in tensors)
        ctx.needs_input_grad = tuple(
            requires_grad and isinstance(t, Tensor) and t.requires_grad for t in inputs)
        arrays = [t.array if isinstance(t, Tensor) else t for t in inputs]
        out = ctx.forward(*arrays, **params)
        result = Tensor(out, requires_grad=requires_grad)
        if requires_grad:
            ctx.parents = inputs
            result.grad_fn = ctx
        for observer in observers:
            observer.op(cls, inputs, params, result)
        return result

    def release(self) -> None:
        """Drop saved arrays and inputs once backward has used them."""
        self.__dict__.clear()
        self.freed = True


def check_same_device_and_dtype(cls, inputs) -> None:
    """The one device/dtype check of every op: its Tensor inputs share a device and a float dtype."""
    named = [(cls.input_name(i), t) for i, t in enumerate(inputs) if isinstance(t, Tensor)]
    if len(named) < 2:
        return
    op = cls.op_name()
    if len({t.device for _, t in named}) > 1:
        desc = ", ".join(f"'{k}' {tuple(t.shape)} on {t.device}" for k, t in named)
        raise ValueError(f"{op}: all tensors must be on one device, got {desc}")
    floats = [(k, t) for k, t in named if t.dtype.kind in "fc"]
    if len({t.dtype for _, t in floats}) > 1:
        desc = ", ".join(f"'{k}' {tuple(t.shape)} {t.dtype}" for k, t in floats)
        raise TypeError(f"{op}: floating-point inputs must share one dtype, got {desc}")


# ---- the backward walk ---------------------------------------------------------------------------

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
        ctx = t.grad_fn
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


def run_backward(roots, grads, retain_graph: bool = False, wanted=None):
    """The backward walk from `roots`, seeded with `grads` (one array each): d(roots)/d(leaf) * grads.

    Without `wanted`, every leaf accumulates its gradient into `.grad`. With `wanted` (id(tensor) -> key),
    the gradients reaching those tensors are returned as {key: array} and no `.grad` changes
    (autograd.grad). Each node is released after its backward unless retain_graph.
    """
    order, seen = [], set()
    for root in roots:  # NOTE: first occurrences of the roots' post-orders keep every node after its inputs
        for t in _topological_order(root):
            if id(t) not in seen:
                seen.add(id(t))
                order.append(t)
    pending, found = {}, {}
    for root, g in zip(roots, grads):
        pending[id(root)] = g if id(root) not in pending else pending[id(root)] + g
    with no_grad():
        for t in reversed(order):
            g = pending.pop(id(t), None)
            if g is None:
                continue
            if wanted is not None and id(t) in wanted:
                found[wanted[id(t)]] = g
            ctx = t.grad_fn
            if ctx is None:  # a leaf: accumulate as PyTorch does
                if wanted is None:
                    t.grad = Tensor(g.copy()) if t.grad is None else Tensor(t.grad.array + g)
                continue
            input_grads = _call_backward(ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for i, (p, need, pg) in enumerate(zip(ctx.parents, ctx.needs_input_grad, input_grads)):
                if not need or pg is None:
                    continue
                if getattr(pg, "shape", None) != p.array.shape or getattr(pg, "dtype", None) != p.array.dtype:
                    _wrong_gradient(ctx, i, p, pg)
                prev = pending.get(id(p))
                pending[id(p)] = pg if prev is None else prev + pg
            if not retain_graph:
                ctx.release()
                t.grad_fn = ctx  # keep the freed node so a second backward raises clearly
    return found


# How NumPy's refusals of a write into a read-only array end: assignment, a ufunc's or put's out=, sort,
# an iterator operand (einsum out=, ufunc.at), place's write-back copy.
_READ_ONLY = ("assignment destination is read-only", "output array is read-only", "sort array is read-only",
              "iterator write flag set is read-only", "WRITEBACKIFCOPY base is read-only")


def _call_backward(ctx, g):
    """ctx.backward on a read-only view of g (NumPy); a write into it is a RuntimeError naming the op.

    NOTE: one gradient array can reach several nodes (an add passes its gradient to both inputs,
    a reshape passes a view), so a backward that wrote into its incoming gradient would silently
    corrupt its siblings' gradients. The view leaves the array itself, which the caller may own,
    writeable. CuPy arrays have no writeable flag: there tests/engine/test_backward_purity.py checks every
    op of the library instead.
    """
    view = g
    if isinstance(g, np.ndarray):
        view = g.view()
        view.flags.writeable = False
    try:
        return ctx.backward(view)
    except ValueError as err:
        if view is g or not str(err).endswith(_READ_ONLY):
            raise
        raise RuntimeError(
            f"{ctx.op_name()}: backward wrote into its incoming gradient (shape {g.shape}), which is "
            f"read-only because it may also feed other nodes' gradients: backward must return new arrays") from err


def _wrong_gradient(ctx, i, p, pg):
    """A gradient must match its input's shape and dtype (no silent cast): the error names the op."""
    shape, dtype = getattr(pg, "shape", None), getattr(pg, "dtype", None)
    got = (f"shape {tuple(shape)} dtype {dtype}" if shape is not None and dtype is not None
           else f"a {type(pg).__name__}")
    raise RuntimeError(f"{ctx.op_name()}: backward returned a gradient of {got} for '{ctx.input_name(i)}' "
                       f"of shape {p.shape} dtype {p.dtype}: it must match the input's shape and dtype")


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
