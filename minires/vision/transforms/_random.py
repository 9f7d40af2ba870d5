"""The random transforms of torchvision.transforms: crops, flips, colour jitter, erasing.

Each call draws from `creation.default_generator()`, looked up at the call (never kept): `mr.manual_seed`
replaces that generator and DataLoader workers reseed it, so a seeded pipeline gives the same images.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ... import creation
from ...tensor import Tensor
from . import functional as F
from .functional import InterpolationMode


def _rng() -> np.random.Generator:
    return creation.default_generator()


class Transform:
    """Base of the transforms: callable on one image, with a readable repr."""

    def __call__(self, img):
        raise NotImplementedError

    def forward(self, img):
        """torchvision's transforms are Modules; forward is the call."""
        return self(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _probability(p, op: str) -> float:
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


class RandomHorizontalFlip(Transform):
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = _probability(p, "RandomHorizontalFlip")

    def __call__(self, img):
        return F.hflip(img) if _rng().random() < self.p else img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip(Transform):
    """Mirror top-bottom with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = _probability(p, "RandomVerticalFlip")

    def __call__(self, img):
        return F.vflip(img) if _rng().random() < self.p else img

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(p={self.p})"


class RandomCrop(Transform):
    """A random (h, w) box, after optional padding (constant, edge, reflect or symmetric)."""

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0, padding_mode: str = "constant"):
        self.size = F.parse_size(size, "RandomCrop")
        self.padding = None if padding is None else F.parse_padding(padding, "RandomCrop")
        F.check_fill(fill, "RandomCrop")
        if padding_mode not in F._PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {', '.join(F._PAD_MODES)}, "
                             f"got {padding_mode!r}")
        self.pad_if_needed, self.fill, self.padding_mode = bool(pad_if_needed), fill, padding_mode
        fills = fill if isinstance(fill, (tuple, list)) else [fill]
        self._zero_fill = padding_mode == "constant" and all(v == 0 for v in fills)
        self._padding_arg = padding

    @staticmethod
    def get_params(img, output_size):
        """(top, left, h, w) of a uniformly random box of output_size inside img."""
        _, h, w = F.image_dims(img, "RandomCrop")
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the input image size "
                             f"{(h, w)}; pass padding= or pad_if_needed=True")
        if h == th and w == tw:
            return 0, 0, h, w
        rng = _rng()
        return int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1)), th, tw

    def __call__(self, img):
        if self.padding is not None and self._zero_fill and not self.pad_if_needed:
            return self._pad_and_crop(img)
        F.image_dims(img, "RandomCrop")  # a wrong input type is named after this transform
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        if self.pad_if_needed:
            _, h, w = F.get_dimensions(img)
            th, tw = self.size
            if w < tw:
                img = F.pad(img, [tw - w, 0], self.fill, self.padding_mode)
            if h < th:
                img = F.pad(img, [0, th - h], self.fill, self.padding_mode)
        top, left, h, w = self.get_params(img, self.size)
        return F.crop(img, top, left, h, w)

    def _pad_and_crop(self, img):
        """Zero padding then a crop, as one crop whose box may reach outside the image (crop fills it with 0)."""
        left, top, right, bottom = self.padding
        _, h, w = F.image_dims(img, "RandomCrop")
        th, tw = self.size
        ph, pw = h + top + bottom, w + left + right  # the padded image's size
        if ph < th or pw < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the padded input image "
                             f"size {(ph, pw)} (image {(h, w)}, padding {self._padding_arg}); pass "
                             f"pad_if_needed=True")
        if ph == th and pw == tw:
            i = j = 0
        else:
            rng = _rng()
            i, j = int(rng.integers(0, ph - th + 1)), int(rng.integers(0, pw - tw + 1))
        return F.crop(img, i - top, j - left, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self._padding_arg})"


class RandomRotation(Transform):
    """Rotate by an angle drawn uniformly from degrees (a number d: [-d, d])."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand: bool = False, center=None, fill=0):
        if isinstance(degrees, numbers.Real):
            if degrees < 0:
                raise ValueError(f"RandomRotation: if degrees is a single number, it must be positive, got {degrees}")
            degrees = (-degrees, degrees)
        if not (isinstance(degrees, (tuple, list)) and len(degrees) == 2 and degrees[0] <= degrees[1]):
            raise ValueError(f"RandomRotation: degrees must be a number or a (min, max) pair, got {degrees!r}")
        F.check_fill(fill, "RandomRotation")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation = F.interpolation_mode(interpolation, "RandomRotation")
        self.expand, self.center, self.fill = expand, center, fill

    def __call__(self, img):
        angle = float(_rng().uniform(self.degrees[0], self.degrees[1]))
        return F.rotate(img, angle, self.interpolation, self.expand, self.center, self.fill)

    def __repr__(self) -> str:
        return f"RandomRotation(degrees={list(self.degrees)}, interpolation={self.interpolation.value})"


class RandomResizedCrop(Transform):
    """A random box of area fraction in scale and aspect ratio in ratio, resized to size (Inception's crop)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
        self.size = F.parse_size(size, "RandomResizedCrop")
        for name, v in (("scale", scale), ("ratio", ratio)):
            if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(e, numbers.Real) for e in v)):
                raise TypeError(f"RandomResizedCrop: {name} must be a pair of numbers, got {v!r}")
            if v[0] > v[1] or v[0] <= 0 and name == "ratio" or v[0] < 0:
                raise ValueError(f"RandomResizedCrop: {name} must be (min, max) with 0 <= min <= max "
                                 f"(ratio > 0), got {v!r}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation = F.interpolation_mode(interpolation, "RandomResizedCrop")
        self.antialias = antialias

    @staticmethod
    def get_params(img, scale, ratio):
        """(top, left, h, w): 10 tries at a box of the drawn area and aspect ratio, else the central crop."""
        _, height, width = F.image_dims(img, "RandomResizedCrop")
        area = height * width
        rng = _rng()
        log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
        for _ in range(10):
            target_area = area * rng.uniform(scale[0], scale[1])
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        # Fallback: the largest central box whose aspect ratio lies within the bounds.
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        top, left, h, w = self.get_params(img, self.scale, self.ratio)
        return F.resized_crop(img, top, left, h, w, self.size, self.interpolation, self.antialias)

    def __repr__(self) -> str:
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"interpolation={self.interpolation.value}, antialias={self.antialias})")


def _jitter_range(value, name: str, center: float = 1.0, bound=(0.0, float("inf")), clip_at_zero: bool = True):
    """[lo, hi] from a number v (center -+ v) or a pair; None when it is the identity."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be non negative, got {value!r}")
        lo, hi = center - float(value), center + float(value)
        if clip_at_zero:
            lo = max(lo, 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise TypeError(f"ColorJitter: {name} should be a single number or a list/tuple of length 2, got {value!r}")
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"ColorJitter: {name} values should lie in {list(bound)}, got {[lo, hi]}")
    return None if lo == hi == center else (lo, hi)


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue changes, applied in a random order."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_at_zero=False)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue):
        """(order of the 4 adjustments, brightness, contrast, saturation, hue factors or None)."""
        rng = _rng()
        order = rng.permutation(4)
        factors = [None if r is None else float(rng.uniform(r[0], r[1]))
                   for r in (brightness, contrast, saturation, hue)]
        return (order, *factors)

    def __call__(self, img):
        order, *factors = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        for k in order:
            if factors[k] is not None:
                img = adjust[k](img, factors[k])
        return img

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


class RandomGrayscale(Transform):
    """Grayscale (keeping the channel count) with probability p."""

    def __init__(self, p: float = 0.1):
        self.p = _probability(p, "RandomGrayscale")

    def __call__(self, img):
        if _rng().random() < self.p:
            return F.rgb_to_grayscale(img, F.get_dimensions(img)[0])
        return img

    def __repr__(self) -> str:
        return f"RandomGrayscale(p={self.p})"


class RandomApply(Transform):
    """Apply the list of transforms with probability p (all or none)."""

    def __init__(self, transforms, p: float = 0.5):
        self.transforms, self.p = list(transforms), _probability(p, "RandomApply")

    def __call__(self, img):
        if self.p < _rng().random():
            return img
        for t in self.transforms:
            img = t(img)
        return img


class RandomChoice(Transform):
    """Apply one transform picked at random (weights p, uniform by default)."""

    def __init__(self, transforms, p=None):
        self.transforms = list(transforms)
        if p is not None and len(p) != len(self.transforms):
            raise ValueError(f"RandomChoice: p has {len(p)} weights for {len(self.transforms)} transforms")
        self.p = None if p is None else [float(v) for v in p]

    def __call__(self, img):
        weights = None if self.p is None else np.asarray(self.p) / sum(self.p)
        return self.transforms[int(_rng().choice(len(self.transforms), p=weights))](img)


class RandomOrder(Transform):
    """Apply the transforms in a random order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for k in _rng().permutation(len(self.transforms)):
            img = self.transforms[k](img)
        return img


class GaussianBlur(Transform):
    """Blur with a Gaussian of sigma drawn uniformly from the range sigma (a number: fixed)."""

    def __init__(self, kernel_size, sigma=(0.1, 2.0)):
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(ks) != 2 or any(not isinstance(k, int) or k <= 0 or k % 2 == 0 for k in ks):
            raise ValueError(f"GaussianBlur: kernel_size must be odd positive ints, got {kernel_size!r}")
        lo, hi = (sigma, sigma) if isinstance(sigma, numbers.Real) else tuple(sigma)
        if not 0 < lo <= hi:
            raise ValueError(f"GaussianBlur: sigma must be positive and (min, max) ordered, got {sigma!r}")
        self.kernel_size, self.sigma = ks, (float(lo), float(hi))

    def __call__(self, img):
        s = float(_rng().uniform(self.sigma[0], self.sigma[1]))
        return F.gaussian_blur(img, list(self.kernel_size), [s, s])


class RandomErasing(Transform):
    """With probability p, erase a random box of a tensor image (area fraction in scale, aspect in ratio)."""

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, inplace: bool = False):
        self.p = _probability(p, "RandomErasing")
        if not (isinstance(value, (numbers.Number, tuple, list)) or value == "random"):
            raise TypeError(f"RandomErasing: value should be a number, a sequence or 'random', got {value!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1] or scale[0] < 0 or scale[1] > 1:
            raise ValueError(f"RandomErasing: scale must be (min, max) within [0, 1] and ratio (min, max), "
                             f"got scale={scale!r}, ratio={ratio!r}")
        self.scale, self.ratio, self.value, self.inplace = tuple(scale), tuple(ratio), value, inplace

    @staticmethod
    def get_params(img, scale, ratio, value=None):
        """(top, left, h, w, values) of the box; value None draws normal noise."""
        c, height, width = img.shape[-3:]
        rng = _rng()
        log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
        for _ in range(10):
            area = height * width * rng.uniform(scale[0], scale[1])
            aspect = math.exp(rng.uniform(log_lo, log_hi))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if not (h < height and w < width):
                continue
            v = rng.standard_normal((c, h, w)).astype(np.float32) if value is None else \
                np.asarray(value, dtype=np.float32).reshape(-1, 1, 1)
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w, v
        return 0, 0, height, width, img.array

    def __call__(self, img):
        if not isinstance(img, Tensor):
            raise TypeError(f"RandomErasing: img should be a Tensor (apply ToTensor first), got {type(img).__name__}")
        if _rng().random() >= self.p:
            return img
        value = None if self.value == "random" else (
            [self.value] if isinstance(self.value, numbers.Number) else list(self.value))
        if value is not None and len(value) not in (1, img.shape[-3]):
            raise ValueError(f"RandomErasing: value has {len(value)} entries for an image of shape {img.shape}")
        top, left, h, w, v = self.get_params(img, self.scale, self.ratio, value)
        return F.erase(img, top, left, h, w, v.astype(img.dtype, copy=False), self.inplace)
