"""PyTorch's torch.nn.functional (`import minires.nn.functional as F`): minires.functional's ops under
PyTorch's full signatures, and the few composite activations and losses scripts call.

The ops themselves, their checks and their gradients are minires.functional's; this module maps
PyTorch's arguments onto them: `inplace` is accepted and returns a new tensor (minires never mutates
an input), the deprecated size_average/reduce become `reduction` as in PyTorch, and an argument
minires has no implementation of (ceil_mode=True, return_indices=True, ...) is a NotImplementedError
naming it.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from .. import _validate, backend
from .. import functional as _F
from .._validate import tensor_arg
from ..creation import default_generator
from ..functional import (adaptive_avg_pool2d, add_relu, batch_norm, dropout, gelu, layer_norm, leaky_relu,
                          linear, normalize, one_hot, pad, sigmoid, tanh)
from ..ops import where
from ..tensor import Tensor


def _unsupported(op: str, **given) -> None:
    """A NotImplementedError naming the first argument whose value minires has no implementation of."""
    for name, (value, default) in given.items():
        if isinstance(value, (tuple, list)) and default is not None:  # dilation=(1, 1) is the default 1
            value = value[0] if len(value) and all(v == value[0] for v in value) else value
        if (value is not None) if default is None else (value != default):
            raise NotImplementedError(f"{op}: {name}={value!r} is not supported by minires (only {default!r})")


def _reduction(op: str, size_average, reduce, reduction: str) -> str:
    """PyTorch's legacy size_average/reduce arguments as a reduction string (they win when given)."""
    if size_average is None and reduce is None:
        return reduction
    warnings.warn(f"{op}: size_average and reduce are deprecated, use reduction", UserWarning, stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


# ---- activations ---------------------------------------------------------------------------------------

def relu(input, inplace: bool = False):
    """max(x, 0); inplace=True returns a new tensor too."""
    return _F.relu(input)


def relu6(input, inplace: bool = False):
    """min(max(x, 0), 6)."""
    return hardtanh(input, 0.0, 6.0)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """x clamped to [min_val, max_val]."""
    return _floating("hardtanh", input).clamp(min_val, max_val)


def silu(input, inplace: bool = False):
    """x * sigmoid(x) (swish)."""
    return input * _F.sigmoid(_floating("silu", input))


def hardsigmoid(input, inplace: bool = False):
    """clamp(x / 6 + 1/2, 0, 1)."""
    return (_floating("hardsigmoid", input) / 6 + 0.5).clamp(0.0, 1.0)


def hardswish(input, inplace: bool = False):
    """x * hardsigmoid(x)."""
    return input * hardsigmoid(input)


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    x = _floating("elu", input)
    neg = x.clamp(max=0.0)  # exp of the negative part only: no overflow for large x
    return x.clamp(min=0.0) + alpha * (neg.exp() - 1)


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta x)) / beta, x itself where beta x > threshold (as PyTorch)."""
    x = _floating("softplus", input)
    bx = x * beta
    # NOTE: log1p(exp(-|bx|)) + max(bx, 0) is exact and never overflows.
    smooth = ((-bx.abs()).exp() + 1).log() / beta + x.clamp(min=0.0)
    return where(bx > threshold, x, smooth)


def _floating(op: str, x):
    return tensor_arg(op, "input", x)  # a floating-point Tensor, else a TypeError naming op


def _softmax_dim(op: str, input, dim):
    """PyTorch's implicit dim of a softmax called without one (0 for 0-, 1- and 3-D input, else 1)."""
    if dim is not None:
        return dim
    warnings.warn(f"{op}: implicit dimension choice is deprecated; pass dim", UserWarning, stacklevel=3)
    return 0 if getattr(input, "ndim", 2) in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    return _F.softmax(input, _softmax_dim("softmax", input, dim), dtype)


def log_softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    return _F.log_softmax(input, _softmax_dim("log_softmax", input, dim), dtype)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of x (N, C, H, W) with probability p, scaling the rest by 1/(1-p)."""
    x = _floating("dropout2d", input)
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D or 4-D input, got shape {x.shape}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout2d: argument 'p' must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return x
    keep = default_generator().random(x.shape[:-2]) >= p  # one draw per (N, C) channel
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = backend.to_device((keep * scale).astype(x.dtype)[..., None, None], x.device)
    return x * Tensor(mask)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Normalise x (N, C, *) over each group of C/num_groups channels and its other dims, then affine per channel."""
    x = _floating("group_norm", input)
    if x.ndim < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got {x.shape}")
    N, C = x.shape[:2]
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups < 1 \
            or C % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups!r} must be a positive int dividing the {C} channels")
    per_group = (C // num_groups) * int(np.prod(x.shape[2:], dtype=np.int64))
    g = x.reshape(N, num_groups, per_group)  # (N, G, C/G * spatial)
    mean, var = g.mean(2, keepdim=True), g.var(2, unbiased=False, keepdim=True)
    y = ((g - mean) / (var + eps).sqrt()).reshape(x.shape)
    channel = (1, C) + (1,) * (x.ndim - 2)  # weight and bias (C,) broadcast over N and the spatial dims
    if weight is not None:
        y = y * weight.reshape(channel)
    if bias is not None:
        y = y + bias.reshape(channel)
    return y


# ---- convolution and pooling ---------------------------------------------------------------------------

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution; padding may be 'valid' or 'same' (stride 1), as PyTorch's."""
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if stride not in (1, (1, 1), [1, 1]):
                raise ValueError(f"conv2d: padding='same' needs stride 1, got stride={stride!r}")
            d = (dilation, dilation) if isinstance(dilation, numbers.Integral) else tuple(dilation)
            total = [d[a] * (weight.shape[2 + a] - 1) for a in range(2)]  # padding the kernel span needs
            left = [t // 2 for t in total]
            if total[0] % 2 or total[1] % 2:  # an even span: PyTorch puts the extra row/column at the end
                input = pad(input, (left[1], total[1] - left[1], left[0], total[0] - left[0]))
                left = [0, 0]
            padding = tuple(left)
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    return _F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _unsupported("max_pool2d", dilation=(dilation, 1), ceil_mode=(ceil_mode, False),
                 return_indices=(return_indices, False))
    return _F.max_pool2d(input, kernel_size, stride, padding)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    _unsupported("avg_pool2d", ceil_mode=(ceil_mode, False), count_include_pad=(count_include_pad, True),
                 divisor_override=(divisor_override, None))
    return _F.avg_pool2d(input, kernel_size, stride, padding)


# ---- losses ------------------------------------------------------------------------------------------

def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross entropy of logits (N, C) with class indices (N,) or with class probabilities (N, C)."""
    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
    if isinstance(target, Tensor) and target.dtype.kind == "f":  # probabilities, as PyTorch >= 1.10
        _unsupported("cross_entropy", weight=(weight, None), label_smoothing=(label_smoothing, 0.0))
        if target.shape != input.shape:
            raise ValueError(f"cross_entropy: probability target must have the input's shape {input.shape}, "
                             f"got {target.shape}")
        loss = -(target * _F.log_softmax(input, 1)).sum(1)
        return {"mean": loss.mean, "sum": loss.sum}.get(reduction, lambda: loss)()
    if weight is None and ignore_index == -100:
        return _F.cross_entropy(input, target, label_smoothing=label_smoothing, reduction=reduction)
    _unsupported("cross_entropy", label_smoothing=(label_smoothing, 0.0))
    return _F.nll_loss(_F.log_softmax(input, 1), target, weight=weight, ignore_index=ignore_index,
                       reduction=reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    return _F.nll_loss(input, target, weight=weight, ignore_index=ignore_index,
                       reduction=_reduction("nll_loss", size_average, reduce, reduction))


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    return _F.mse_loss(input, target, reduction=_reduction("mse_loss", size_average, reduce, reduction))


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """Mean (or sum, or each) of |input - target|, same shapes."""
    _validate.target_like("l1_loss", input, target)
    return _reduce("l1_loss", (input - target).abs(), _reduction("l1_loss", size_average, reduce, reduction))


def _reduce(op: str, loss, reduction: str):
    reduction = _validate.reduction_arg(op, reduction)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """-(y log p + (1 - y) log(1 - p)) of probabilities p, each log clamped at -100 as PyTorch."""
    _validate.target_like("binary_cross_entropy", input, target)
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 as PyTorch's (its gradient there is NaN)
        loss = -(target * input.log().clamp(min=-100.0) + (1 - target) * (1 - input).log().clamp(min=-100.0))
    loss = loss if weight is None else loss * weight
    return _reduce("binary_cross_entropy", loss, _reduction("binary_cross_entropy", size_average, reduce, reduction))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(x), y), computed as max(x, 0) - x y + log(1 + exp(-|x|)) (no overflow)."""
    _validate.target_like("binary_cross_entropy_with_logits", input, target)
    x = input
    softplus_neg = ((-x.abs()).exp() + 1).log() + (-x).clamp(min=0.0)  # log(1 + exp(-x)), stable
    if pos_weight is None:
        loss = x - x * target + softplus_neg  # = (1 - y) x + log(1 + exp(-x))
    else:
        loss = (1 - target) * x + (1 + (pos_weight - 1) * target) * softplus_neg
    loss = loss if weight is None else loss * weight
    return _reduce("binary_cross_entropy_with_logits", loss,
                   _reduction("binary_cross_entropy_with_logits", size_average, reduce, reduction))


__all__ = ["adaptive_avg_pool2d", "add_relu", "avg_pool2d", "batch_norm", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "conv2d", "cross_entropy", "dropout",
           "dropout2d", "elu", "gelu", "group_norm", "hardsigmoid", "hardswish", "hardtanh", "l1_loss", "layer_norm",
           "leaky_relu", "linear",
           "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "normalize", "one_hot", "pad", "relu", "relu6",
           "sigmoid", "silu", "softmax", "softplus", "tanh"]
