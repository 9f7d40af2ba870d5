"""Grad mode: whether ops record a graph, per thread; no_grad and enable_grad switch it (context managers
or decorators). PyTorch's other switches, set_grad_enabled and inference_mode, are in minires.autograd."""
from __future__ import annotations

import threading

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


__all__ = ["enable_grad", "is_grad_enabled", "no_grad"]
