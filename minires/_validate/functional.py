"""Checks of the functional ops' arguments: the losses' reductions, class-index targets and class
weights, batch norm's per-channel tensors, the pools' windows."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..grad_mode import is_grad_enabled
from ..tensor import Tensor
from .core import pair, tensor_arg


REDUCTIONS = ("mean", "sum", "none")


def reduction_arg(op: str, reduction) -> str:
    """reduction, one of REDUCTIONS."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: argument 'reduction' must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def class_indices(op: str, target, x):
    """target's array of integer class indices on x's device: a Tensor on that device, or a
    NumPy/CuPy array (a loader's NumPy labels follow the input)."""
    if isinstance(target, Tensor):
        if target.device != x.device:
            raise ValueError(f"{op}: 'target' {target.shape} is on {target.device} but 'input' {x.shape} "
                             f"is on {x.device}")
        t = target.array
    elif isinstance(target, np.ndarray) or get_array_module(target) is not np:
        t = backend.to_device(target, x.device)
    else:
        raise TypeError(f"{op}: argument 'target' must be a Tensor or an array of class indices, "
                        f"got {type(target).__name__}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: argument 'target' must hold integer class indices (int32/int64), "
                        f"got dtype {t.dtype}")
    return t


def check_targets(target, num_classes: int, shape=None, op: str = "cross_entropy") -> None:
    """ValueError naming the first class index outside [0, num_classes) (a host sync on a GPU)."""
    if target.size:
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            where = f" (input shape {shape})" if shape is not None else ""
            raise ValueError(f"{op}: target {bad} is out of bounds for {num_classes} classes{where}")


def logits_target(input, target):
    """cross_entropy's (N,) class indices for logits (N, C), range-checked when given on the host.

    Labels already on a GPU are not checked here: that would cost a device-to-host sync per step."""
    N, C = input.shape
    t = class_indices("cross_entropy", target, input)
    if t.shape != (N,):
        raise ValueError(f"cross_entropy: 'target' must have shape ({N},) for input of shape {input.shape}, "
                         f"got {tuple(t.shape)}")
    if C == 0:
        raise ValueError(f"cross_entropy: 'input' needs at least one class, got shape {input.shape}")
    host = target if isinstance(target, np.ndarray) else t
    if isinstance(host, np.ndarray):
        check_targets(host, C, input.shape)
    return t


def label_smoothing_arg(label_smoothing) -> float:
    """cross_entropy's label_smoothing, a real number in [0, 1]."""
    if not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool):
        raise TypeError(f"cross_entropy: argument 'label_smoothing' must be a float, got {label_smoothing!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: argument 'label_smoothing' must be in [0.0, 1.0], got {label_smoothing}")
    return float(label_smoothing)


def log_probs_target(input, target, ignore_index):
    """nll_loss's class indices for log-probabilities input (N, C, *d) or (C,): shape (N, *d) or (),
    each in range unless it equals ignore_index (an int)."""
    t = class_indices("nll_loss", target, input)
    expected = (input.shape[0],) + input.shape[2:] if input.ndim > 1 else ()
    if tuple(t.shape) != expected:
        raise ValueError(f"nll_loss: 'target' must have shape {expected} for input of shape {input.shape}, "
                         f"got {tuple(t.shape)}")
    C = input.shape[1] if input.ndim > 1 else input.shape[0]
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (numbers.Integral, np.integer)):
        raise TypeError(f"nll_loss: argument 'ignore_index' must be an int, got {ignore_index!r}")
    check_targets(t[t != ignore_index], C, input.shape, op="nll_loss")
    return t


def class_weight(op: str, weight, input):
    """A (C,) floating-point Tensor of class weights (or None) that needs no gradient."""
    if weight is None:
        return None
    C = input.shape[1] if input.ndim > 1 else input.shape[0]
    tensor_arg(op, "weight", weight)
    if weight.shape != (C,):
        raise ValueError(f"{op}: argument 'weight' must have shape ({C},) for input of shape "
                         f"{input.shape}, got {weight.shape}")
    if weight.requires_grad and is_grad_enabled():  # as PyTorch: no gradient for the class weights
        raise RuntimeError(f"{op}: the derivative for 'weight' is not implemented; pass weight.detach()")
    return weight


def same_shape(op: str, input, target) -> None:
    """input and target are floating-point Tensors of one shape (no broadcasting)."""
    tensor_arg(op, "input", input)
    tensor_arg(op, "target", target)
    if input.shape != target.shape:
        raise ValueError(f"{op}: 'input' and 'target' must have the same shape, got {input.shape} "
                         f"and {target.shape}")


def channel_arg(op: str, name: str, t, x, stat_dtypes=None):
    """The array of a (C,) per-channel Tensor t (or None) for input x (N, C, *). Running statistics
    (stat_dtypes given: they are not inputs of the Function) must also be on x's device, in one of stat_dtypes."""
    if t is None:
        return None
    tensor_arg(op, name, t)
    C = x.shape[1]
    if t.shape != (C,):
        raise ValueError(f"{op}: argument '{name}' must have shape ({C},) for input of shape "
                         f"{x.shape}, got {t.shape}")
    if stat_dtypes is not None and t.device != x.device:
        raise ValueError(f"{op}: argument '{name}' must be on the input's device {x.device}, got {t.device}")
    if stat_dtypes is not None and t.dtype not in stat_dtypes:
        raise TypeError(f"{op}: argument '{name}' must have the input's dtype {x.dtype}, got dtype {t.dtype}")
    return t.array


def pool_args(op: str, x, kernel_size, stride, padding, nonempty=()) -> dict:
    """A 2-D pool's input x (N, C, H, W) and its kernel_size, stride (None: kernel_size), padding as pairs."""
    tensor_arg(op, "input", x, ndim=4, nonempty=nonempty)
    kernel_size = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel_size if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size {kernel_size}")
    N, C, H, W = x.shape
    if H + 2 * padding[0] < kernel_size[0] or W + 2 * padding[1] < kernel_size[1]:
        raise ValueError(f"{op}: kernel {kernel_size} is larger than the padded input "
                         f"{(H + 2 * padding[0], W + 2 * padding[1])} (input {x.shape}, padding {padding})")
    return {"kernel_size": kernel_size, "stride": stride, "padding": padding}


def target_like(op: str, input, target) -> None:
    """input is a floating-point Tensor and target a Tensor of its shape (the elementwise losses)."""
    if not isinstance(target, Tensor) or target.shape != tensor_arg(op, "input", input).shape:
        raise ValueError(f"{op}: target must be a Tensor of the input's shape {input.shape}, "
                         f"got {getattr(target, 'shape', type(target).__name__)}")


def normalized_shape_arg(op: str, normalized_shape) -> tuple:
    """An int or a sequence of positive ints, as a tuple."""
    shape = (normalized_shape,) if isinstance(normalized_shape, (numbers.Integral, np.integer)) \
        else normalized_shape
    if not isinstance(shape, (tuple, list)) or not shape or any(
            isinstance(s, (bool, np.bool_)) or not isinstance(s, (numbers.Integral, np.integer)) for s in shape):
        raise TypeError(f"{op}: normalized_shape must be an int or a non-empty sequence of ints, "
                        f"got {normalized_shape!r}")
    if any(s <= 0 for s in shape):
        raise ValueError(f"{op}: normalized_shape must hold positive sizes, got {tuple(shape)}")
    return tuple(int(s) for s in shape)
