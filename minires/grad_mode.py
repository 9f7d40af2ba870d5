"""Grad mode: whether ops record a graph, per thread, and the switches PyTorch has for it (no_grad,
enable_grad, set_grad_enabled, inference_mode), as context managers and decorators."""
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


__all__ = ["enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled"]
