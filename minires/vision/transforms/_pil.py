"""The PIL side of the transforms: Pillow's own operations, as torchvision runs them on PIL images.

Pillow is optional (the `train` extra), so it is imported where used.
"""
from __future__ import annotations

import numpy as np

_BYTE_MODES = {"RGB": 3, "L": 1, "RGBA": 4}  # modes stored as one byte per band, bands interleaved


def is_pil(img) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(img, Image.Image)


def channels(img) -> int:
    """Band count: 3 for RGB, 1 for L, 4 for RGBA..."""
    return len(img.getbands())


def hflip(img):
    from PIL import Image
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def vflip(img):
    from PIL import Image
    return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def crop(img, top: int, left: int, height: int, width: int):
    # Pillow fills the part of the box outside the image with zeros, as torchvision's crop does.
    return img.crop((left, top, left + width, top + height))


def _fill(fill, img):
    """A fill value in the form Pillow wants for img's mode: one number per band."""
    n = channels(img)
    if isinstance(fill, (tuple, list)):
        if len(fill) == 1:
            fill = fill * n
        fill = tuple(int(v) if img.mode not in ("F",) else float(v) for v in fill)
        return fill[0] if n == 1 else fill
    return fill if n == 1 else tuple([fill] * n)


def pad(img, left: int, top: int, right: int, bottom: int, fill=0, padding_mode: str = "constant"):
    from PIL import Image
    if padding_mode == "constant":
        w, h = img.size
        out = Image.new(img.mode, (w + left + right, h + top + bottom), _fill(fill, img))
        if img.mode == "P":
            out.putpalette(img.getpalette())
        out.paste(img, (left, top))
        return out
    # NOTE: Pillow has no reflect/edge padding; like torchvision, go through NumPy and back.
    palette = img.getpalette() if img.mode == "P" else None
    arr = np.asarray(img)
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
    out = Image.fromarray(np.pad(arr, widths, mode=padding_mode))
    if out.mode != img.mode:
        out = out.convert(img.mode)
    if palette is not None:
        out.putpalette(palette)
    return out


def resize(img, height: int, width: int, resample: int):
    return img.resize((width, height), resample)


def rotate(img, angle: float, resample: int, expand: bool, center, fill):
    return img.rotate(angle, resample, expand, center, fillcolor=None if fill is None else _fill(fill, img))


def to_grayscale(img, num_output_channels: int = 1):
    gray = img.convert("L")
    return gray if num_output_channels == 1 else gray.convert("RGB")


def adjust_brightness(img, factor: float):
    from PIL import ImageEnhance
    return ImageEnhance.Brightness(img).enhance(factor)


def adjust_contrast(img, factor: float):
    from PIL import ImageEnhance
    return ImageEnhance.Contrast(img).enhance(factor)


def adjust_saturation(img, factor: float):
    from PIL import ImageEnhance
    return ImageEnhance.Color(img).enhance(factor)


def adjust_hue(img, hue_factor: float):
    from PIL import Image
    if img.mode in ("L", "1", "I", "F"):
        return img
    h, s, v = img.convert("HSV").split()
    # NOTE: Pillow's hue is a byte, so the shift wraps modulo 256 (truncated toward zero, as torchvision).
    shifted = (np.asarray(h, dtype=np.int64) + int(hue_factor * 255)) % 256
    h = Image.fromarray(shifted.astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert(img.mode)


def to_array(img) -> np.ndarray:
    """(H, W, C) array of the image's pixels ('1' becomes 0/255 uint8, as torchvision's to_tensor)."""
    w, h = img.size
    if img.mode in _BYTE_MODES:
        # NOTE: tobytes + frombuffer costs 2/3 of np.asarray(img) on a 32x32 image (read-only result).
        return np.frombuffer(img.tobytes(), dtype=np.uint8).reshape(h, w, _BYTE_MODES[img.mode])
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8)[..., None] * np.uint8(255)
    arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr
