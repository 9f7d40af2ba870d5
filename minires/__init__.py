"""minires: a deep-learning engine on NumPy (CPU) and CuPy (GPU), with ResNets for CIFAR-10."""
from . import backend
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckError, gradcheck
from .tensor import (Tensor, bool_, default_generator, float16, float32, float64, full, get_rng_state,
                     int32, int64, manual_seed, ones, ones_like, rand, randn, set_rng_state, tensor,
                     uint8, zeros, zeros_like)
from . import functional  # noqa: E402  (needs Tensor defined first)
from . import nn, models  # noqa: E402  (need functional)
from . import optim  # noqa: E402
from . import amp, parallel  # noqa: E402
from . import data  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "zeros", "ones", "full", "randn", "rand", "zeros_like", "ones_like",
           "manual_seed", "default_generator", "get_rng_state", "set_rng_state", "no_grad",
           "enable_grad", "is_grad_enabled", "Function", "gradcheck", "GradcheckError", "backend",
           "functional", "optim", "float16", "float32", "float64", "int32", "int64", "uint8", "bool_"]
