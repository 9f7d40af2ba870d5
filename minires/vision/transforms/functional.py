"""torchvision.transforms.functional: one call per transform, on PIL images and on Tensors (..., C, H, W).

`import minires.vision.transforms.functional as TF` then `TF.hflip(img)`, `TF.crop(img, top, left, h, w)`...
A PIL image in gives a PIL image out (Pillow does the work); a Tensor in gives a Tensor out (NumPy/CuPy
on its raw array, outside autograd).
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

from ... import missing
from ...backend import get_array_module
from ...tensor import Tensor
from . import _pil, _tensor
from ._args import (_PAD_MODES, _PIL_CODES, _TENSOR_MODES, InterpolationMode, check_fill, interpolation_mode,
                    parse_padding, parse_size, resized_output_size)


# ---- what an image is ---------------------------------------------------------------------------

def _kind(img, op: str) -> str:
    """'pil' or 'tensor'; anything else is a TypeError naming the op."""
    if isinstance(img, Tensor):
        if img.ndim < 2:
            raise ValueError(f"{op}: a tensor image must have at least 2 dimensions (..., H, W), got shape {img.shape}")
        return "tensor"
    if _pil.is_pil(img):
        return "pil"
    raise TypeError(f"{op}: img should be a PIL Image or a Tensor, got {type(img).__name__}")


def get_dimensions(img) -> list:
    """[channels, height, width] of a PIL image or a tensor."""
    return image_dims(img, "get_dimensions")


def image_dims(img, op: str) -> list:
    """get_dimensions, with errors naming the op."""
    if _kind(img, op) == "pil":
        return [_pil.channels(img), img.size[1], img.size[0]]
    return [_tensor.channel_count(img.array), img.shape[-2], img.shape[-1]]


def get_image_size(img) -> list:
    """[width, height], as torchvision's (deprecated there in favour of get_dimensions)."""
    _, h, w = get_dimensions(img)
    return [w, h]


def get_image_num_channels(img) -> int:
    return get_dimensions(img)[0]


def _on_array(img, fn, *args):
    return Tensor(fn(img.array, *args))


def _need_channels(img, op: str, allowed=(1, 3)) -> None:
    c = get_dimensions(img)[0]
    if c not in allowed:
        shape = img.shape if isinstance(img, Tensor) else f"mode {img.mode}"
        raise TypeError(f"{op}: expected an image with {' or '.join(map(str, allowed))} channels, got {shape}")


# ---- conversions --------------------------------------------------------------------------------

def to_tensor(pic) -> Tensor:
    """PIL image or (H, W[, C]) ndarray -> Tensor (C, H, W); uint8 becomes float32 in [0, 1]."""
    if _pil.is_pil(pic):
        arr = _pil.to_array(pic)  # (H, W, C)
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"to_tensor: pic should be 2 or 3 dimensional (H, W[, C]), got shape {pic.shape}")
        arr = pic[..., None] if pic.ndim == 2 else pic
    else:
        raise TypeError(f"to_tensor: pic should be a PIL Image or an ndarray, got {type(pic).__name__}")
    chw = arr.transpose(2, 0, 1)  # (C, H, W) view
    if arr.dtype != np.uint8:
        return Tensor(np.array(chw))  # a copy: never share a PIL buffer or the caller's array
    out = np.empty(chw.shape, dtype=np.float32)
    np.divide(chw, np.float32(255), out=out)
    return Tensor(out)


def pil_to_tensor(pic) -> Tensor:
    """PIL image -> Tensor (C, H, W) of its own dtype (uint8 for RGB/L), no scaling."""
    if not _pil.is_pil(pic):
        raise TypeError(f"pil_to_tensor: pic should be a PIL Image, got {type(pic).__name__}")
    arr = _pil.to_array(pic)  # (H, W, C), maybe a read-only view
    out = np.empty((arr.shape[2],) + arr.shape[:2], dtype=arr.dtype)
    out[...] = arr.transpose(2, 0, 1)  # (C, H, W)
    return Tensor(out)


def to_pil_image(pic, mode=None):
    """Tensor (C, H, W) or ndarray (H, W, C) -> PIL image; float images are scaled by 255 (truncated)."""
    from PIL import Image
    if isinstance(pic, Tensor):
        if pic.ndim not in (2, 3):
            raise ValueError(f"to_pil_image: pic should be 2 or 3 dimensional (C, H, W), got shape {pic.shape}")
        arr = np.asarray(pic.array.get() if hasattr(pic.array, "get") else pic.array)
        arr = arr[None] if arr.ndim == 2 else arr
        if arr.dtype.kind == "f" and mode != "F":
            arr = (arr * 255).astype(np.uint8)
        arr = arr.transpose(1, 2, 0)  # (H, W, C)
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"to_pil_image: pic should be 2 or 3 dimensional (H, W, C), got shape {pic.shape}")
        arr = pic[..., None] if pic.ndim == 2 else pic
    else:
        raise TypeError(f"to_pil_image: pic should be a Tensor or an ndarray, got {type(pic).__name__}")
    if arr.shape[-1] == 1:
        arr = arr[..., 0]
    try:
        image = Image.fromarray(np.ascontiguousarray(arr))
    except TypeError:  # Pillow's own message names neither the call nor the image
        raise TypeError(f"to_pil_image: Pillow has no image mode for {arr.shape[-1] if arr.ndim == 3 else 1} "
                        f"channel(s) of dtype {arr.dtype} (image shape {getattr(pic, 'shape', None)}); use 1, 3 or 4 "
                        f"channels of uint8 (or one channel of int16, int32 or float32)") from None
    return image if mode is None or image.mode == mode else image.convert(mode)


def convert_image_dtype(image: Tensor, dtype=np.float32) -> Tensor:
    """Rescale between float [0, 1] and the integer ranges (uint8 [0, 255]...)."""
    if not isinstance(image, Tensor):
        raise TypeError(f"convert_image_dtype: image should be a Tensor, got {type(image).__name__}")
    return Tensor(_tensor.convert_dtype(image.array, dtype))


def normalize(tensor: Tensor, mean, std, inplace: bool = False) -> Tensor:
    """(tensor - mean[c]) / std[c] per channel of a float tensor (..., C, H, W)."""
    x = check_normalize(tensor, mean, std, "normalize")
    xp = get_array_module(x)
    mean = xp.asarray(mean, dtype=x.dtype).reshape(-1, 1, 1)  # (C, 1, 1)
    std = xp.asarray(std, dtype=x.dtype).reshape(-1, 1, 1)
    out = _tensor.normalize(x, mean, std, inplace)
    return tensor if inplace else Tensor(out)


def check_normalize(tensor, mean, std, op: str):
    """The raw array of a float tensor image whose channels match mean and std (std nowhere 0)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor (apply ToTensor first), got {type(tensor).__name__}")
    x = tensor.array
    if x.ndim < 3:
        raise ValueError(f"{op}: expected a tensor image of shape (..., C, H, W), got shape {tensor.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float tensor (apply ToTensor or ConvertImageDtype first), got {x.dtype}")
    c = x.shape[-3]
    for name, v in (("mean", mean), ("std", std)):
        n = len(v) if isinstance(v, (tuple, list)) or (hasattr(v, "ndim") and v.ndim == 1) else 1
        if n not in (1, c):
            raise ValueError(f"{op}: {name} has {n} values but the image has {c} channels (shape {tensor.shape})")
    if np.any(np.asarray(std.array if isinstance(std, Tensor) else std, dtype=np.float64) == 0):
        raise ValueError(f"{op}: std evaluated to zero ({std!r}), leading to division by zero")
    return x


# ---- geometry -----------------------------------------------------------------------------------

def hflip(img):
    """Mirror left-right."""
    return _pil.hflip(img) if _kind(img, "hflip") == "pil" else _on_array(img, _tensor.hflip)


def vflip(img):
    """Mirror top-bottom."""
    return _pil.vflip(img) if _kind(img, "vflip") == "pil" else _on_array(img, _tensor.vflip)


def crop(img, top: int, left: int, height: int, width: int):
    """The box at (top, left) of size (height, width); the part outside the image is filled with 0."""
    kind = _kind(img, "crop")
    if height <= 0 or width <= 0:
        raise ValueError(f"crop: height and width must be positive, got ({height}, {width})")
    top, left, height, width = int(top), int(left), int(height), int(width)
    if kind == "pil":
        return _pil.crop(img, top, left, height, width)
    return Tensor(_tensor.crop(img.array, top, left, height, width))


def center_crop(img, output_size):
    """The central (h, w) box; an image smaller than that is zero-padded around first."""
    th, tw = parse_size(output_size, "center_crop", "output_size")
    _, h, w = get_dimensions(img)
    if th > h or tw > w:
        img = pad(img, [(tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0,
                        (tw - w + 1) // 2 if tw > w else 0, (th - h + 1) // 2 if th > h else 0], fill=0)
        _, h, w = get_dimensions(img)
        if h == th and w == tw:
            return img
    return crop(img, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Pad the borders: 'constant' with fill, 'edge', 'reflect' (no edge repeat) or 'symmetric' (edge repeated)."""
    kind = _kind(img, "pad")
    left, top, right, bottom = parse_padding(padding, "pad")
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"pad: padding_mode must be one of {', '.join(_PAD_MODES)}, got {padding_mode!r}")
    check_fill(fill, "pad")
    _, h, w = get_dimensions(img)
    if padding_mode == "reflect" and (max(left, right) >= w or max(top, bottom) >= h):
        raise ValueError(f"pad: reflect padding ({left}, {top}, {right}, {bottom}) must be smaller than the "
                         f"image (H, W) = ({h}, {w}) on each side")
    if isinstance(fill, (tuple, list)) and len(fill) not in (1, get_dimensions(img)[0]):
        raise ValueError(f"pad: fill has {len(fill)} values but the image has {get_dimensions(img)[0]} channels")
    if kind == "pil":
        return _pil.pad(img, left, top, right, bottom, fill, padding_mode)
    return Tensor(_tensor.pad(img.array, left, top, right, bottom, fill, padding_mode))


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resize to size (h, w), or the shorter edge to an int size keeping the aspect ratio."""
    kind = _kind(img, "resize")
    mode = interpolation_mode(interpolation, "resize")
    _, h, w = get_dimensions(img)
    new_h, new_w = resized_output_size(h, w, size, max_size)
    if (new_h, new_w) == (h, w):
        return img
    if kind == "pil":
        return _pil.resize(img, new_h, new_w, _PIL_CODES["nearest" if mode.value == "nearest-exact" else mode.value])
    if mode.value not in _TENSOR_MODES:
        raise ValueError(f"resize: interpolation {mode.value!r} is for PIL images only; tensors take "
                         f"{', '.join(_TENSOR_MODES)}")
    return Tensor(_tensor.resize(img.array, new_h, new_w, mode.value, bool(antialias)))


def resized_crop(img, top: int, left: int, height: int, width: int, size,
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
    """crop then resize to size."""
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)


def rotate(img, angle: float, interpolation=InterpolationMode.NEAREST, expand: bool = False, center=None,
           fill=None):
    """Rotate counter-clockwise by angle degrees about center (x, y), default the image's centre."""
    kind = _kind(img, "rotate")
    mode = interpolation_mode(interpolation, "rotate")
    if not isinstance(angle, numbers.Real):
        raise TypeError(f"rotate: angle must be a number, got {angle!r}")
    if center is not None and not (isinstance(center, (tuple, list)) and len(center) == 2):
        raise ValueError(f"rotate: center must be an (x, y) pair, got {center!r}")
    if fill is not None:
        check_fill(fill, "rotate")
    if kind == "pil":
        if mode.value not in ("nearest", "bilinear", "bicubic"):
            raise ValueError(f"rotate: interpolation {mode.value!r} is not one Pillow rotates with")
        return _pil.rotate(img, float(angle), _PIL_CODES[mode.value], expand, center, fill)
    if mode.value not in ("nearest", "nearest-exact", "bilinear"):
        raise ValueError(f"rotate: tensors rotate with nearest or bilinear interpolation, got {mode.value!r}")
    return Tensor(_tensor.rotate(img.array, float(angle), mode.value, 0 if fill is None else fill, expand, center))


# ---- colour -------------------------------------------------------------------------------------

def _non_negative(factor, op: str, name: str) -> None:
    if not isinstance(factor, numbers.Real) or factor < 0:
        raise ValueError(f"{op}: {name} must be a non-negative number, got {factor!r}")


def adjust_brightness(img, brightness_factor: float):
    """Scale the pixel values: 0 gives black, 1 the original."""
    _non_negative(brightness_factor, "adjust_brightness", "brightness_factor")
    if _kind(img, "adjust_brightness") == "pil":
        return _pil.adjust_brightness(img, brightness_factor)
    return _on_array(img, _tensor.adjust_brightness, brightness_factor)


def adjust_contrast(img, contrast_factor: float):
    """Blend with the mean gray level: 0 gives a uniform gray image, 1 the original."""
    _non_negative(contrast_factor, "adjust_contrast", "contrast_factor")
    if _kind(img, "adjust_contrast") == "pil":
        return _pil.adjust_contrast(img, contrast_factor)
    _need_channels(img, "adjust_contrast")
    return _on_array(img, _tensor.adjust_contrast, contrast_factor)


def adjust_saturation(img, saturation_factor: float):
    """Blend with the grayscale image: 0 gives gray, 1 the original."""
    _non_negative(saturation_factor, "adjust_saturation", "saturation_factor")
    if _kind(img, "adjust_saturation") == "pil":
        return _pil.adjust_saturation(img, saturation_factor)
    _need_channels(img, "adjust_saturation")
    return _on_array(img, _tensor.adjust_saturation, saturation_factor)


def adjust_hue(img, hue_factor: float):
    """Rotate the hue by hue_factor turns, hue_factor in [-0.5, 0.5]."""
    if not isinstance(hue_factor, numbers.Real) or not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor must lie in [-0.5, 0.5], got {hue_factor!r}")
    if _kind(img, "adjust_hue") == "pil":
        return _pil.adjust_hue(img, hue_factor)
    _need_channels(img, "adjust_hue")
    return _on_array(img, _tensor.adjust_hue, hue_factor)


def rgb_to_grayscale(img, num_output_channels: int = 1):
    """Luma 0.2989 R + 0.587 G + 0.114 B, as 1 or 3 channels."""
    if num_output_channels not in (1, 3):
        raise ValueError(f"rgb_to_grayscale: num_output_channels must be 1 or 3, got {num_output_channels!r}")
    if _kind(img, "rgb_to_grayscale") == "pil":
        return _pil.to_grayscale(img, num_output_channels)
    c = get_dimensions(img)[0]
    if c == 1:
        x = img.array
        return Tensor(x.copy() if num_output_channels == 1 else get_array_module(x).concatenate([x] * 3, axis=-3))
    _need_channels(img, "rgb_to_grayscale", (3,))
    return _on_array(img, _tensor.rgb_to_grayscale, num_output_channels)


to_grayscale = rgb_to_grayscale


def erase(img: Tensor, i: int, j: int, h: int, w: int, v, inplace: bool = False) -> Tensor:
    """Set the box (i, j, h, w) of a tensor image to v (a number or a tensor broadcastable to the box)."""
    if not isinstance(img, Tensor):
        raise TypeError(f"erase: img should be a Tensor, got {type(img).__name__}")
    value = v.array if isinstance(v, Tensor) else v
    out = _tensor.erase(img.array, i, j, h, w, value, inplace)
    return img if inplace else Tensor(out)


def gaussian_blur(img, kernel_size, sigma=None):
    """Blur with a Gaussian kernel (odd sizes); sigma defaults to 0.3 * ((k - 1) * 0.5 - 1) + 0.8."""
    ks = [kernel_size] * 2 if isinstance(kernel_size, int) else list(kernel_size)
    if len(ks) != 2 or any(not isinstance(k, int) or k <= 0 or k % 2 == 0 for k in ks):
        raise ValueError(f"gaussian_blur: kernel_size must be odd positive ints, got {kernel_size!r}")
    if sigma is None:
        sigma = [0.3 * ((k - 1) * 0.5 - 1) + 0.8 for k in ks]
    sigma = [float(sigma)] * 2 if isinstance(sigma, numbers.Real) else [float(s) for s in sigma]
    if len(sigma) == 1:
        sigma = sigma * 2
    if min(sigma) <= 0:
        raise ValueError(f"gaussian_blur: sigma must be positive, got {sigma!r}")
    if _kind(img, "gaussian_blur") == "pil":
        # NOTE: Pillow's blur takes one radius; torchvision converts PIL images to tensors instead.
        t = gaussian_blur(pil_to_tensor(img), ks, sigma)
        return to_pil_image(t, img.mode)
    return _on_array(img, _tensor.gaussian_blur, ks, sigma)


__all__ = ["InterpolationMode", "get_dimensions", "get_image_size", "get_image_num_channels", "to_tensor",
           "pil_to_tensor", "to_pil_image", "convert_image_dtype", "normalize", "hflip", "vflip", "crop",
           "center_crop", "pad", "resize", "rotate", "resized_crop", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "adjust_hue", "rgb_to_grayscale", "to_grayscale", "erase", "gaussian_blur"]

missing.install(sys.modules[__name__])  # a torchvision name minires lacks: an error naming it
