"""Batch-vectorised augmentations on float NCHW arrays (NumPy or CuPy), driven by an explicit numpy Generator."""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module


def _check_batch(op, x):
    """Image transforms take float batches laid out (N, C, H, W), as the DataLoader makes them."""
    if not hasattr(x, "ndim") or x.ndim != 4:
        raise ValueError(f"{op}: expected a batch of shape (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating batch, got dtype {x.dtype}")
    if x.shape[1] > 4 and x.shape[3] in (1, 3):
        raise ValueError(f"{op}: expected a batch of shape (N, C, H, W), got {x.shape}, which looks channels-last "
                         f"(N, H, W, C); transpose it with .transpose(0, 3, 1, 2)")


def _check_rng(op, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: needs an explicit numpy Generator as rng (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")


def _pad(xp, x, p, mode):
    """Pad H and W by p on each side ('reflect' mirrors without repeating the edge, 'constant' is zeros)."""
    # NOTE: np.pad is a generic Python routine costing ~5x more than these few slice copies on a batch.
    N, C, H, W = x.shape
    out = xp.zeros((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
    out[:, :, p:p + H, p:p + W] = x
    if mode == "reflect":
        out[:, :, :p, p:p + W] = x[:, :, p:0:-1, :]  # padded row p-k = row k of x
        out[:, :, p + H:, p:p + W] = x[:, :, H - 2:H - 2 - p:-1, :] if H - 2 - p >= 0 else x[:, :, H - 2::-1, :]
        out[:, :, :, :p] = out[:, :, :, 2 * p:p:-1]  # columns last, so the corners mirror the padded rows
        out[:, :, :, p + W:] = out[:, :, :, p + W - 2:W - 2:-1]
    return out


class Compose:
    """Apply transforms in order, passing the same rng along."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomCrop:
    """Pad each side by `padding`, then cut a size x size window at a random offset per image."""

    def __init__(self, size=32, padding=4, padding_mode="reflect"):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be a positive int or (h, w), got {size!r}")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative int, got {padding!r}")
        if padding_mode not in ("reflect", "constant"):
            raise ValueError(f"RandomCrop: padding_mode must be 'reflect' or 'constant', got {padding_mode!r}")
        self.padding, self.padding_mode = padding, padding_mode

    def __call__(self, x, rng=None):
        _check_batch("RandomCrop", x)
        _check_rng("RandomCrop", rng)
        xp = get_array_module(x)
        N, C, H, W = x.shape
        p, (th, tw) = self.padding, self.size
        if self.padding_mode == "reflect" and p >= min(H, W):
            raise ValueError(f"RandomCrop: reflect padding {p} needs H and W > {p}, got {(H, W)}")
        if th > H + 2 * p or tw > W + 2 * p:
            raise ValueError(f"RandomCrop: crop {self.size} larger than the padded image {(H + 2 * p, W + 2 * p)}")
        x = _pad(xp, x, p, self.padding_mode) if p else x  # (N, C, H+2p, W+2p)
        Hp, Wp = x.shape[2:]
        oy, ox = (xp.asarray(o) for o in self.get_params(N, Hp, Wp, rng))
        # A strided view of every th x tw window, then one gather of each image's window (no loop over images).
        sN, sC, sH, sW = x.strides
        windows = xp.lib.stride_tricks.as_strided(
            x, shape=(N, C, Hp - th + 1, Wp - tw + 1, th, tw), strides=(sN, sC, sH, sW, sH, sW))
        return windows[xp.arange(N), :, oy, ox]  # (N, C, th, tw)

    def get_params(self, n, height, width, rng):
        """Top-left offsets (oy, ox), each (n,), of the windows cut from padded images of height x width."""
        oy = rng.integers(0, height - self.size[0] + 1, size=n)
        ox = rng.integers(0, width - self.size[1] + 1, size=n)
        return oy, ox

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p."""

    def __init__(self, p=0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p!r}")
        self.p = p

    def __call__(self, x, rng=None):
        _check_batch("RandomHorizontalFlip", x)
        _check_rng("RandomHorizontalFlip", rng)
        xp = get_array_module(x)
        flip = xp.asarray(np.flatnonzero(rng.random(x.shape[0]) < self.p))
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Cutout:
    """Zero a size x size square (all channels) centred at a uniform random pixel, clipped at the borders."""

    def __init__(self, size):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"Cutout: size must be a positive int, got {size!r}")
        self.size = size

    def __call__(self, x, rng=None):
        _check_batch("Cutout", x)
        _check_rng("Cutout", rng)
        xp = get_array_module(x)
        N, C, H, W = x.shape
        # DeVries & Taylor 2017: the centre may lie anywhere, so patches near a border are partly outside
        y0 = rng.integers(0, H, size=N) - self.size // 2
        x0 = rng.integers(0, W, size=N) - self.size // 2
        ys, xs = np.arange(H), np.arange(W)
        in_y = (ys >= y0[:, None]) & (ys < y0[:, None] + self.size)  # (N, H)
        in_x = (xs >= x0[:, None]) & (xs < x0[:, None] + self.size)  # (N, W)
        keep = xp.asarray(~(in_y[:, :, None] & in_x[:, None, :]))[:, None]  # (N, 1, H, W)
        return x * keep.astype(x.dtype)

    def __repr__(self):
        return f"Cutout(size={self.size})"


class Normalize:
    """(x - mean) / std per channel."""

    def __init__(self, mean, std):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"Normalize: mean and std need the same length and std > 0, got {mean!r}, {std!r}")

    def __call__(self, x, rng=None):
        _check_batch("Normalize", x)
        if x.shape[1] != len(self.mean):
            raise ValueError(f"Normalize: {len(self.mean)} channel statistics for a batch of shape {x.shape}")
        xp = get_array_module(x)
        mean = xp.asarray(self.mean, dtype=x.dtype)[:, None, None]  # (C, 1, 1)
        std = xp.asarray(self.std, dtype=x.dtype)[:, None, None]
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


__all__ = ["Compose", "RandomCrop", "RandomHorizontalFlip", "Cutout", "Normalize"]
