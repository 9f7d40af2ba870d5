"""Batch-vectorised augmentations on float NCHW arrays (NumPy or CuPy), driven by an explicit random source.

The random source is a numpy Generator, or (what the DataLoader passes) a SampleRNG: draws keyed by
each sample's (seed, epoch, index), so an image's augmentation does not depend on which batch, or
which process of a data-parallel run, it lands in.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, odd: SplitMix64's increment
_COIN_STREAM = 1 << 40  # AlternatingFlip's per-image coin: a call number no transform pipeline reaches


def _mix_int(z: int) -> int:
    """SplitMix64's finaliser on a Python int: a bijection of 64-bit words with full avalanche."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _mix(z: np.ndarray) -> np.ndarray:
    """_mix_int on a uint64 array (NumPy arrays wrap modulo 2**64 silently, as the hash wants)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _fold(h, word):
    """Hash word into h (ints or uint64 arrays): injective in each argument for a fixed other."""
    if isinstance(h, int):
        return _mix_int((((h ^ word) * 0xD6E8FEB86659FD93) + _GOLDEN) & _M64)
    return _mix((h ^ word) * np.uint64(0xD6E8FEB86659FD93) + np.uint64(_GOLDEN))


class SampleRNG:
    """Random draws keyed by sample: call k gives sample `indices[i]` the values hash(seed, epoch, index, k, j).

    It answers the Generator calls the transforms make, `integers`, `random`, `uniform` and `normal`,
    with one row of values per sample (size = n or (n, ...) for the n samples); the values of a
    sample are a function of (seed, epoch, its index, how many calls came before) alone, computed by
    a counter-based hash (SplitMix64's mixer), vectorised over the batch. Any other Generator method
    goes to `generator`, one numpy Generator per batch keyed by all its samples: deterministic, but
    its draws change with the batching.
    """

    def __init__(self, indices, seed: int = 0, epoch: int = 0):
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0)):
            raise ValueError(f"SampleRNG: indices must be a 1-D array of non-negative ints, got {indices!r}")
        for name, v in (("seed", seed), ("epoch", epoch)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"SampleRNG: {name} must be a non-negative int, got {v!r}")
        self.indices, self.seed, self.epoch, self.calls = idx.astype(np.int64), int(seed), int(epoch), 0
        key = _fold(_fold(_mix_int(0x5EED), int(seed) & _M64), int(epoch) & _M64)
        self._keys = _fold(np.full(len(idx), key, dtype=np.uint64), idx.astype(np.uint64))  # (n,)
        self._generator = None

    def __len__(self) -> int:
        return len(self.indices)

    def _uniform(self, size, per_value: int = 1) -> np.ndarray:
        """float64 in [0, 1) of shape size (leading axis: the samples), per_value words per value."""
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size if size is not None else ())
        if not shape or shape[0] != len(self.indices):
            raise ValueError(f"SampleRNG: draws are per sample, so size must start with the batch's "
                             f"{len(self.indices)} samples, got size={size!r}")
        count = math.prod(shape[1:]) * per_value
        keys = _fold(self._keys, np.uint64(self.calls))  # (n,): this call's stream of each sample
        self.calls += 1
        words = _fold(keys[:, None], np.arange(count, dtype=np.uint64)[None, :])  # (n, count)
        u = (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53  # the top 53 bits
        return u.reshape(shape + ((per_value,) if per_value > 1 else ()))

    def random(self, size=None, dtype=np.float64):
        """Uniform floats in [0, 1), one row per sample."""
        return self._uniform(size).astype(dtype, copy=False)

    def uniform(self, low=0.0, high=1.0, size=None):
        """Uniform floats in [low, high), one row per sample."""
        return low + (high - low) * self._uniform(size)

    def integers(self, low, high=None, size=None, dtype=np.int64):
        """Integers in [low, high) (or [0, low) without high), one row per sample."""
        low, high = (0, low) if high is None else (low, high)
        if np.any(np.asarray(high) <= np.asarray(low)):
            raise ValueError(f"SampleRNG.integers: high must exceed low, got low={low!r}, high={high!r}")
        span = np.asarray(high) - np.asarray(low)
        # NOTE: floor(u * span) has a bias of at most span / 2**53, far below anything an augmentation sees.
        k = np.minimum(np.floor(self._uniform(size) * span), span - 1)
        return (low + k).astype(dtype)

    def normal(self, loc=0.0, scale=1.0, size=None):
        """Gaussian floats (Box-Muller on two uniforms per value), one row per sample."""
        u = self._uniform(size, per_value=2)
        return loc + scale * np.sqrt(-2.0 * np.log1p(-u[..., 0])) * np.cos(2.0 * np.pi * u[..., 1])

    @property
    def generator(self) -> np.random.Generator:
        """One numpy Generator for the whole batch, keyed by (seed, epoch, every index of the batch)."""
        if self._generator is None:
            self._generator = np.random.default_rng([self.seed, self.epoch, len(self.indices), *self.indices.tolist()])
        return self._generator

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.generator, name)

    def __repr__(self):
        return f"SampleRNG(n={len(self.indices)}, seed={self.seed}, epoch={self.epoch}, calls={self.calls})"


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
    if not isinstance(rng, (np.random.Generator, SampleRNG)):
        raise TypeError(f"{op}: needs an explicit numpy Generator as rng (np.random.default_rng(seed)) or a "
                        f"SampleRNG, got {type(rng).__name__}")


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


class AlternatingFlip:
    """Jordan's alternating flip: a random half of the images mirrored in epoch 0, every image's flip
    toggled in each later epoch, so that over two epochs each image is seen both ways.

    Whether image i is mirrored in epoch e is b_i XOR (e mod 2), with b_i a coin drawn once per
    image from (seed, i) alone; it needs the DataLoader's SampleRNG, which knows each image's index
    and the epoch."""

    def __call__(self, x, rng=None):
        _check_batch("AlternatingFlip", x)
        if not isinstance(rng, SampleRNG):
            raise TypeError(f"AlternatingFlip: needs the DataLoader's SampleRNG (it knows each image's index and "
                            f"the epoch), got {type(rng).__name__}")
        xp = get_array_module(x)
        fixed = SampleRNG(rng.indices, seed=rng.seed, epoch=0)
        fixed.calls = _COIN_STREAM  # a stream of its own: not the one epoch 0's other transforms draw from
        coin = fixed.random(len(rng)) < 0.5  # (N,): b_i, fixed per image
        flip = xp.asarray(np.flatnonzero(coin ^ bool(rng.epoch % 2)))
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out

    def __repr__(self):
        return "AlternatingFlip()"


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


__all__ = ["SampleRNG", "Compose", "RandomCrop", "RandomHorizontalFlip", "AlternatingFlip", "Cutout", "Normalize"]
