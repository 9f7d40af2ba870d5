"""Recording one forward pass: every op Function.apply runs, with the module path it ran in.

The recorder is one of minires.tensor's `observers` while the model runs. It keeps each op's class,
inputs, parameters and result (the references keep the ids unique until the graph is built), and
which results depend on the model's inputs ("live"), so that a live value read into Python can be
warned about: the recording follows the branch that value took, for this input only.
"""
from __future__ import annotations

import contextlib
import threading
import warnings

from ..tensor import Tensor, observers


class TracerWarning(UserWarning):
    """The exported graph may not generalise: a value depending on the input left for Python (PyTorch's name)."""


class Record:
    """One op as it ran: the Function class, its positional inputs, keyword params, result and module path
    ("" at the model's top level)."""

    __slots__ = ("cls", "inputs", "params", "result", "where")

    def __init__(self, cls, inputs, params, result, where):
        self.cls, self.inputs, self.params, self.result, self.where = cls, inputs, params, result, where

    @property
    def op(self) -> str:
        return self.cls.op_name()

    def tensors(self):
        """The Tensor inputs (Cat's list, Clamp's bounds and GetItem's tensor index included)."""
        found = [t for t in self.inputs if isinstance(t, Tensor)]
        index = self.params.get("index")
        items = index if isinstance(index, tuple) else (index,)
        return found + [i for i in items if isinstance(i, Tensor)]


class Recorder:
    """The observer of one export's forward pass."""

    def __init__(self, model, inputs):
        # NOTE: observers are process-wide; the recording is of the exporting thread's ops only
        self.thread = threading.get_ident()
        self.records = []
        self.live = {id(t) for t in inputs}
        # values known to be the same for every input: parameters, buffers, and what ops made of them alone
        self.constant = {id(t) for t in list(model.parameters()) + list(model.buffers())}
        self.inputs = list(inputs)
        self.root = f"{type(model).__name__} (top level)"
        self.stack = []  # module paths of the forward calls now running, innermost last
        self._warned = set()

    def where(self) -> str:
        """The module path of the innermost forward now running ("" for the model itself)."""
        return self.stack[-1] if self.stack else ""

    def label(self, path: str) -> str:
        """A module path for messages: the model's own class name at the top level."""
        return path or self.root

    # ---- minires.tensor's observer interface ---------------------------------------------------
    def op(self, cls, inputs, params, result) -> None:
        if threading.get_ident() != self.thread:
            return
        rec = Record(cls, tuple(inputs), dict(params), result, self.where())
        self.records.append(rec)
        if any(id(t) in self.live for t in rec.tensors()):
            self.live.add(id(result))
        elif all(id(t) in self.constant for t in rec.tensors()):
            self.constant.add(id(result))

    def leaves_graph(self, t) -> None:
        if threading.get_ident() != self.thread:
            return
        # NOTE: a tensor from outside the recorded ops (a comparison's result, say) may depend on the
        # input: only values known to be constant pass silently.
        if id(t) in self.constant:
            return
        where = self.label(self.where())
        if where in self._warned:
            return
        self._warned.add(where)
        warnings.warn(f"{where}: a tensor of shape {t.shape} that may depend on the input was converted to a "
                      f"Python value during the ONNX export; the exported graph follows the branch this input took and "
                      f"may be wrong for other inputs", TracerWarning, stacklevel=4)


@contextlib.contextmanager
def recording(model, inputs):
    """Record the ops of the block's forward pass; each submodule's forward is wrapped to track its path."""
    rec = Recorder(model, inputs)
    wrapped = []
    try:
        for name, module in model.named_modules():
            own = module.__dict__.get("forward")  # an instance attribute (rare): restored as it was
            object.__setattr__(module, "forward", _tracked(module.forward, name, rec.stack))
            wrapped.append((module, own))
        observers.append(rec)
        yield rec
    finally:
        if rec in observers:
            observers.remove(rec)
        for module, own in wrapped:
            if own is None:
                del module.__dict__["forward"]
            else:
                object.__setattr__(module, "forward", own)


def _tracked(forward, name, stack):
    def call(*args, **kwargs):
        stack.append(name)
        try:
            return forward(*args, **kwargs)
        finally:
            stack.pop()
    return call


def is_recording() -> bool:
    """Whether an export is recording a forward pass now, in this thread."""
    return any(isinstance(o, Recorder) and o.thread == threading.get_ident() for o in observers)
