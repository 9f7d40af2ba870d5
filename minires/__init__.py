"""minires: a deep-learning engine on NumPy (CPU) and CuPy (GPU), with ResNets for CIFAR-10."""
import sys as _sys

import numpy as _np

from . import backend
from .backend import device
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .tensor import Function, Tensor
from .tensor import bool_, float16, float32, float64, int32, int64, uint8
from . import ops
from .ops import cat, exp, log, maximum, minimum, stack, where
from .ops.arithmetic import sqrt
from .ops.convert import LEGACY_TYPES, channels_last, contiguous_format, memory_format, preserve_format
# PyTorch's function forms of the Tensor methods; max, min, sum and abs shadow Python's builtins in this
# file, which uses none of them.
from .ops.forms import (abs, add, amax, argmax, argmin, argsort, bmm, chunk, clamp, div, eq, equal, flatten, ge, gt,
                        is_floating_point, is_tensor, le, lt, matmul, max, mean, min, mm, mul, ne, norm, numel,
                        permute, reshape, sort, split, squeeze, std, sub, sum, t, topk, transpose, unsqueeze, var)
from . import autograd
from .autograd import inference_mode, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .creation import (Generator, arange, default_generator, empty, empty_like, eye, from_numpy, full, full_like, get_rng_state,
                       linspace, manual_seed, ones, ones_like, rand, rand_like, randint, randn, randn_like,
                       randperm, set_rng_state, tensor, zeros, zeros_like)
from .creation import initial_seed
from .checkpoint import load, save
from . import functional
from . import methods  # binds Tensor's operators and methods (t + u, t.sum(), t.relu(), ...) from one table
from . import nn, models, optim
from . import amp, dispatch, parallel, tuning
from .parallel import get_num_threads, set_num_threads
from . import backends
from . import missing
from . import kernels  # the fast paths beside the reference ops (minires/kernels)
kernels.registry.install()  # the one place they enter dispatch: kernels/registry.py's FAST table
from .dispatch import set_impl
from . import data
from . import recipes  # mr.recipes.get("airbench94"): what a training recipe decides (minires/recipes)
from . import cuda  # PyTorch's torch.cuda namespace (the kernels are minires.kernels.cuda)
from . import utils  # PyTorch's torch.utils.data (minires.vision is imported on first use)

# GradScaler under PyTorch's torch.amp name, bound here: amp sits below optim.
amp.GradScaler = optim.GradScaler
autocast = amp.autocast  # torch.autocast(device_type, dtype=None, enabled=True)
relu, sigmoid, tanh, softmax, log_softmax = (functional.relu, functional.sigmoid, functional.tanh,
                                             functional.softmax, functional.log_softmax)

# PyTorch's names of NumPy dtypes, the legacy tensor types (mr.FloatTensor) and torch.Size. Served by the
# module's __getattr__: as globals, float/int/bool would shadow the builtins in this file.
DTYPE_ALIASES = {"float": float32, "double": float64, "half": float16, "long": int64, "int": int32,
                 "short": _np.dtype(_np.int16), "int16": _np.dtype(_np.int16), "int8": _np.dtype(_np.int8),
                 "bool": bool_, "cfloat": _np.dtype(_np.complex64), "complex64": _np.dtype(_np.complex64),
                 "complex128": _np.dtype(_np.complex128), "dtype": _np.dtype, "Size": tuple}
missing.install(_sys.modules[__name__], {**DTYPE_ALIASES, **LEGACY_TYPES})
for _namespace in (nn, nn.functional, nn.init, nn.parallel, optim, optim.lr_scheduler, autograd, backends,
                   backends.cudnn, backends.cuda, backends.mps, cuda, cuda.amp, utils, utils.data, amp):
    missing.install(_namespace)
missing.install_finder()

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "zeros", "ones", "full", "randn", "rand", "zeros_like", "ones_like",
           "manual_seed", "default_generator", "get_rng_state", "set_rng_state", "no_grad",
           "enable_grad", "is_grad_enabled", "Function", "gradcheck", "GradcheckError", "backend",
           "functional", "optim", "float16", "float32", "float64", "int32", "int64", "uint8", "bool_",
           "cat", "stack", "arange", "linspace", "eye", "randint", "full_like", "empty", "empty_like",
           "rand_like", "randn_like", "from_numpy", "where", "maximum", "minimum", "exp", "log", "save",
           "load", "Generator", "inference_mode", "set_grad_enabled", "cuda", "device", "autograd", "backends",
           "randperm", "sqrt", "abs", "add", "amax", "argmax", "argmin", "argsort", "bmm", "chunk", "clamp", "div",
           "eq", "equal", "flatten", "ge", "gt", "is_floating_point", "is_tensor", "le", "lt", "matmul", "max",
           "mean", "min", "mm", "mul", "ne", "norm", "numel", "permute", "reshape", "sort", "split", "squeeze",
           "std", "sub", "sum", "t", "topk", "transpose", "unsqueeze", "var", "relu", "sigmoid", "tanh",
           "softmax", "log_softmax", "get_num_threads", "set_num_threads", "memory_format", "channels_last",
           "contiguous_format", "preserve_format"]
