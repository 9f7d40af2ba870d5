"""torchvision.transforms: per-sample transforms on PIL images and Tensors (C, H, W), composed with Compose.

`import minires.vision.transforms as transforms` then, as in a torchvision script,
`transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
transforms.ToTensor(), transforms.Normalize(mean, std)])`. Random transforms draw from minires's global
generator (fetched at each call: `mr.manual_seed(s)` replaces it, DataLoader workers reseed it), so a
seeded pipeline repeats.
"""
from __future__ import annotations

import sys

import numpy as np

from ... import missing
from ...backend import get_array_module
from ...tensor import Tensor
from . import _tensor
from . import functional as F
from .functional import InterpolationMode
from ._random import (ColorJitter, GaussianBlur, RandomApply, RandomChoice, RandomCrop, RandomErasing,
                      RandomGrayscale, RandomHorizontalFlip, RandomOrder, RandomResizedCrop, RandomRotation,
                      RandomVerticalFlip, Transform)


class Compose(Transform):
    """Apply the transforms in turn."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {type(t).__name__}")

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"    {t}\n" for t in self.transforms) + ")"


class ToTensor(Transform):
    """PIL image or ndarray (H, W, C) -> Tensor (C, H, W); uint8 becomes float32 in [0, 1]."""

    def __call__(self, pic):
        return F.to_tensor(pic)


class PILToTensor(Transform):
    """PIL image -> Tensor (C, H, W) of the image's dtype, unscaled."""

    def __call__(self, pic):
        return F.pil_to_tensor(pic)


class ToPILImage(Transform):
    """Tensor (C, H, W) or ndarray (H, W, C) -> PIL image."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)


class ConvertImageDtype(Transform):
    """Convert a tensor image to dtype, rescaling the values (uint8 255 <-> float 1.0)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __call__(self, image):
        return F.convert_image_dtype(image, self.dtype)

    def __repr__(self) -> str:
        return f"ConvertImageDtype(dtype={self.dtype})"


class Normalize(Transform):
    """(tensor - mean[c]) / std[c] per channel of a float tensor image."""

    def __init__(self, mean, std, inplace: bool = False):
        self.mean = list(mean) if isinstance(mean, (tuple, list)) else mean
        self.std = list(std) if isinstance(std, (tuple, list)) else std
        self.inplace = inplace
        if np.any(np.asarray(self.std, dtype=np.float64) == 0):
            raise ValueError(f"Normalize: std evaluated to zero ({std!r}), leading to division by zero")
        self._arrays = {}  # (dtype, channels, array type) -> mean, std as (C, 1, 1) arrays

    def __call__(self, tensor):
        x = tensor.array if isinstance(tensor, Tensor) else None
        key = None if x is None or x.ndim < 3 else (x.dtype, x.shape[-3], type(x))
        arrays = self._arrays.get(key)
        if arrays is None:  # first image of this dtype/channel count/array type: check, then cache
            x = F.check_normalize(tensor, self.mean, self.std, "Normalize")
            xp = get_array_module(x)
            arrays = self._arrays[key] = (xp.asarray(self.mean, dtype=x.dtype).reshape(-1, 1, 1),  # (C, 1, 1)
                                          xp.asarray(self.std, dtype=x.dtype).reshape(-1, 1, 1))
        out = _tensor.normalize(x, arrays[0], arrays[1], self.inplace)
        return tensor if self.inplace else Tensor(out)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Resize(Transform):
    """Resize to (h, w), or the shorter edge to an int size keeping the aspect ratio."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        if not (isinstance(size, (tuple, list)) and len(size) == 2):
            F.parse_size(size, "Resize")
        else:
            F.parse_size(tuple(size), "Resize")
        self.size = size
        self.interpolation = F.interpolation_mode(interpolation, "Resize")
        self.max_size, self.antialias = max_size, antialias

    def __call__(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self) -> str:
        return (f"Resize(size={self.size}, interpolation={self.interpolation.value}, max_size={self.max_size}, "
                f"antialias={self.antialias})")


class CenterCrop(Transform):
    """The central (h, w) box (zero-padded around when the image is smaller)."""

    def __init__(self, size):
        self.size = F.parse_size(size, "CenterCrop")

    def __call__(self, img):
        return F.center_crop(img, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class Pad(Transform):
    """Pad the borders ('constant' with fill, 'edge', 'reflect' or 'symmetric')."""

    def __init__(self, padding, fill=0, padding_mode: str = "constant"):
        F.parse_padding(padding, "Pad")
        F.check_fill(fill, "Pad")
        if padding_mode not in F._PAD_MODES:
            raise ValueError(f"Pad: padding_mode must be one of {', '.join(F._PAD_MODES)}, got {padding_mode!r}")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def __repr__(self) -> str:
        return f"Pad(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


class Lambda(Transform):
    """A user function as a transform."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)


class Grayscale(Transform):
    """Convert to grayscale with 1 or 3 output channels."""

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)

    def __repr__(self) -> str:
        return f"Grayscale(num_output_channels={self.num_output_channels})"


__all__ = ["Compose", "ToTensor", "PILToTensor", "ToPILImage", "ConvertImageDtype", "Normalize", "Resize",
           "CenterCrop", "Pad", "Lambda", "Grayscale", "RandomCrop", "RandomHorizontalFlip",
           "RandomVerticalFlip", "RandomResizedCrop", "ColorJitter", "RandomGrayscale", "RandomApply",
           "RandomChoice", "RandomOrder", "RandomErasing", "RandomRotation", "GaussianBlur", "InterpolationMode",
           "functional"]

missing.install(sys.modules[__name__])  # a torchvision name minires lacks: an error naming it
