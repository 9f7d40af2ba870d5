"""minires: a deep-learning engine on NumPy (CPU) and CuPy (GPU), with ResNets for CIFAR-10."""
from . import backend
from .tensor import Function, Tensor, _GradMode, enable_grad, is_grad_enabled, no_grad
from .tensor import bool_, float16, float32, float64, int32, int64, uint8
from . import ops  # binds Tensor's operators and methods (t + u, t.sum(), t.reshape(...), ...)
from .ops import cat, exp, log, maximum, minimum, stack, where
from .gradcheck import GradcheckError, gradcheck
from .creation import (Generator, arange, default_generator, empty, empty_like, eye, from_numpy, full, full_like, get_rng_state,
                       linspace, manual_seed, ones, ones_like, rand, rand_like, randint, randn, randn_like,
                       set_rng_state, tensor, zeros, zeros_like)
from .checkpoint import load, save
from . import functional
from . import nn, models, optim
from . import amp, dispatch, parallel, tuning
from . import kernels  # registers the fast paths with dispatch
from .dispatch import set_impl
from . import data
from . import recipes  # mr.recipes.get("airbench94"): what a training recipe decides (minires/recipes)
from . import cuda  # the kernels package; it also answers PyTorch's cuda.is_available()

# Bound here, above the modules they join: Tensor methods that run functional ops (functional sits
# above tensor and ops), and GradScaler under PyTorch's torch.amp name (amp sits below optim).
Tensor.relu, Tensor.sigmoid, Tensor.tanh = functional.relu, functional.sigmoid, functional.tanh
amp.GradScaler = optim.GradScaler


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


def _cuda_device_count() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy or a GPU)."""
    if not backend.cupy_available():
        return 0
    return int(backend.cupy_module().cuda.runtime.getDeviceCount())


cuda.is_available = backend.cupy_available
cuda.device_count = _cuda_device_count

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "zeros", "ones", "full", "randn", "rand", "zeros_like", "ones_like",
           "manual_seed", "default_generator", "get_rng_state", "set_rng_state", "no_grad",
           "enable_grad", "is_grad_enabled", "Function", "gradcheck", "GradcheckError", "backend",
           "functional", "optim", "float16", "float32", "float64", "int32", "int64", "uint8", "bool_",
           "cat", "stack", "arange", "linspace", "eye", "randint", "full_like", "empty", "empty_like",
           "rand_like", "randn_like", "from_numpy", "where", "maximum", "minimum", "exp", "log", "save",
           "load", "Generator", "inference_mode", "set_grad_enabled", "cuda"]
