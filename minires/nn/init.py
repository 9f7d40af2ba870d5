"""In-place initialisers with PyTorch's names, drawing from minires' seeded generator."""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..creation import default_generator
from ..tensor import Tensor


def _fill(tensor, sample):
    """Write `sample(shape, dtype)` (a NumPy array) into the tensor's array, keeping dtype and device."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init: expected a Tensor, got {type(tensor).__name__}")
    # NOTE: float32 tensors are drawn in float32 directly: twice as fast on ResNet-sized layers.
    dtype = np.float32 if tensor.dtype == np.float32 else np.float64
    values = np.asarray(sample(tensor.shape, dtype)).astype(tensor.dtype, copy=False)
    tensor.array[...] = backend.to_device(values, tensor.device)
    return tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = in_channels * receptive field, fan_out = out_channels * receptive field (weights are (out, in, ...))."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in/out need a tensor of at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    """Fill with U(a, b)."""
    def sample(shape, dtype):
        u = default_generator().random(shape, dtype=dtype)
        u *= b - a
        u += a
        return u
    return _fill(tensor, sample)


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill with N(mean, std^2)."""
    def sample(shape, dtype):
        z = default_generator().standard_normal(shape, dtype=dtype)
        z *= std
        z += mean
        return z
    return _fill(tensor, sample)


def constant_(tensor, val: float):
    return _fill(tensor, lambda shape, dtype: np.full(shape, val, dtype=dtype))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He et al. 2015 uniform: U(-bound, bound) with bound = gain * sqrt(3 / fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He et al. 2015 normal: N(0, (gain / sqrt(fan))^2)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor, gain: float = 1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    """Fill with N(mean, std^2) restricted to [a, b]: values outside are drawn again until none is."""
    if not a < b:
        raise ValueError(f"trunc_normal_: a={a} must be less than b={b}")

    def sample(shape, dtype):
        z = default_generator().standard_normal(shape) * std + mean  # float64: the bounds checked exactly
        bad = (z < a) | (z > b)
        while bad.any():  # NOTE: expected rounds are few unless [a, b] holds little of the mass
            z[bad] = default_generator().standard_normal(int(bad.sum())) * std + mean
            bad = (z < a) | (z > b)
        return z.astype(dtype)
    return _fill(tensor, sample)


def orthogonal_(tensor, gain: float = 1.0):
    """Fill a (rows, *cols) tensor with a (semi-)orthogonal matrix from the QR of a Gaussian one, times gain."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: needs a tensor of at least 2 dimensions, got shape {tensor.shape}")

    def sample(shape, dtype):
        rows, cols = shape[0], int(np.prod(shape[1:]))
        m = default_generator().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(m)
        q *= np.sign(np.diag(r))  # a uniform draw over orthogonal matrices, as PyTorch's
        q = q if rows >= cols else q.T  # (rows, cols)
        return (gain * q).reshape(shape).astype(dtype)
    return _fill(tensor, sample)


def default_reset_(weight, bias=None) -> None:
    """PyTorch's Conv/Linear default: kaiming_uniform_(a=sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)


def dirac_(tensor, groups: int = 1):
    """Identity filters: out-channel i of each of the `groups` passes in-channel i through unchanged
    (the centre tap is 1, all else 0); out-channels beyond the in-channels are zero. Works on 3-D to
    5-D weights (out, in, *kernel), as PyTorch's."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"dirac_: expected a Tensor, got {type(tensor).__name__}")
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: expected a 3-D, 4-D or 5-D weight (out, in, *kernel), got shape {tensor.shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or tensor.shape[0] % groups:
        raise ValueError(f"dirac_: groups must be a positive int dividing the {tensor.shape[0]} out-channels, "
                         f"got {groups!r}")
    out_per_group = tensor.shape[0] // groups
    n = min(out_per_group, tensor.shape[1])
    centre = tuple(k // 2 for k in tensor.shape[2:])

    def sample(shape, dtype):
        w = np.zeros(shape, dtype=dtype)  # (out, in, *kernel)
        for g in range(groups):
            for i in range(n):
                w[(g * out_per_group + i, i) + centre] = 1
        return w
    return _fill(tensor, sample)


def patch_whitening_(weight, images, eps: float = 5e-4):
    """Set a conv weight (2k, C, kh, kw) to whiten the kh x kw patches of `images` (N, C, H, W).

    With Σ the uncentred covariance of all the images' patches (flattened to C*kh*kw vectors) and
    (λ_i, v_i) its k largest eigenpairs, filter i is v_i / sqrt(λ_i + eps) and filter k + i its
    negative: on these patches the first k outputs then have covariance diag(λ_i / (λ_i + eps)),
    the identity up to eps (Jordan's airbench patch-whitening layer). Returns weight.
    """
    if not isinstance(weight, Tensor):
        raise TypeError(f"patch_whitening_: expected a Tensor weight, got {type(weight).__name__}")
    if weight.ndim != 4 or weight.shape[0] % 2:
        raise ValueError(f"patch_whitening_: expected a conv weight (2k, C, kh, kw) with an even out-channel "
                         f"count, got shape {weight.shape}")
    out, C, kh, kw = weight.shape
    x = backend.to_numpy(getattr(images, "array", images))
    if x.ndim != 4 or x.shape[1] != C or x.shape[2] < kh or x.shape[3] < kw or x.shape[0] < 1:
        raise ValueError(f"patch_whitening_: images must be (N, {C}, H >= {kh}, W >= {kw}) for a weight of shape "
                         f"{weight.shape}, got shape {x.shape}")
    if out // 2 > C * kh * kw:
        raise ValueError(f"patch_whitening_: {out // 2} directions asked of {C * kh * kw}-dimensional patches "
                         f"(weight shape {weight.shape})")
    if not eps >= 0:
        raise ValueError(f"patch_whitening_: eps must be >= 0, got {eps!r}")
    if not np.isfinite(x).all():
        raise ValueError("patch_whitening_: images hold NaN or infinite values")
    windows = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), (kh, kw), axis=(2, 3))
    patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, C * kh * kw)  # (N*H'*W', C*kh*kw)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    lam, vec = eigenvalues[::-1][:out // 2], eigenvectors[:, ::-1][:, :out // 2]  # the k largest
    if lam[-1] + eps <= 0:
        raise ValueError(f"patch_whitening_: the patch covariance is singular along a kept direction "
                         f"(eigenvalue {lam[-1]:.3g}); use eps > 0 or more varied images")
    filters = (vec / np.sqrt(np.maximum(lam, 0) + eps)).T.reshape(out // 2, C, kh, kw)
    w = np.concatenate([filters, -filters])
    weight.array[...] = backend.to_device(w.astype(weight.dtype), weight.device)
    return weight
