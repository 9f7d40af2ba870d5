"""The tensor side of the transforms: kernels on raw NumPy/CuPy arrays of shape (..., C, H, W).

They run on `Tensor.array`, outside autograd (a data pipeline needs no graph), and keep torchvision's
numerics for tensors: blends clamp to [0, 1] (float) or [0, 255] (uint8, truncated back), resize
weights follow PIL's separable filters (antialias) or plain interpolation (antialias=False).
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import get_array_module

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


def is_float(x) -> bool:
    return x.dtype.kind == "f"


def bound(x) -> float:
    """The top of the value range: 1 for float images, the dtype's max for integer ones."""
    return 1.0 if is_float(x) else float(np.iinfo(x.dtype).max)


def hflip(x):
    return x[..., ::-1].copy()


def vflip(x):
    return x[..., ::-1, :].copy()


def crop(x, top: int, left: int, height: int, width: int):
    """x[..., top:top+height, left:left+width]; the part outside the image is zero, as torchvision's crop."""
    h, w = x.shape[-2:]
    if top >= 0 and left >= 0 and top + height <= h and left + width <= w:
        return x[..., top:top + height, left:left + width].copy()
    xp = get_array_module(x)
    out = xp.zeros(x.shape[:-2] + (height, width), dtype=x.dtype)
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + height, h), min(left + width, w)
    if t1 > t0 and l1 > l0:
        out[..., t0 - top:t1 - top, l0 - left:l1 - left] = x[..., t0:t1, l0:l1]
    return out


def pad(x, left: int, top: int, right: int, bottom: int, fill=0, padding_mode: str = "constant"):
    """np.pad of the last two axes; `fill` (a number or one per channel) for mode 'constant'."""
    xp = get_array_module(x)
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    if padding_mode != "constant":
        return xp.pad(x, widths, mode=padding_mode)
    h, w = x.shape[-2:]
    out = xp.empty(x.shape[:-2] + (h + top + bottom, w + left + right), dtype=x.dtype)
    if isinstance(fill, (tuple, list)):
        out[...] = xp.asarray(fill, dtype=x.dtype).reshape(-1, 1, 1)  # (C, 1, 1): one value per channel
    else:
        out[...] = fill
    out[..., top:top + h, left:left + w] = x
    return out


# ---- resize: separable filters ------------------------------------------------------------------

def _triangle(d):
    return np.maximum(0.0, 1.0 - np.abs(d))


def _cubic(a):
    def f(d):
        d = np.abs(d)
        near = ((a + 2) * d - (a + 3)) * d * d + 1
        far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return np.where(d < 1, near, np.where(d < 2, far, 0.0))
    return f


_weights_cache: dict = {}


def resize_weights(n_in: int, n_out: int, mode: str, antialias: bool) -> np.ndarray:
    """(n_out, n_in) float64 matrix taking one axis from n_in to n_out samples."""
    key = (n_in, n_out, mode, antialias)
    if key in _weights_cache:
        return _weights_cache[key]
    scale = n_in / n_out
    rows = np.arange(n_out)
    if mode in ("nearest", "nearest-exact"):
        offset = 0.5 if mode == "nearest-exact" else 0.0
        src = np.minimum(np.floor((rows + offset) * scale).astype(np.int64), n_in - 1)
        weights = np.zeros((n_out, n_in))
        weights[rows, src] = 1.0
    else:
        kernel = _triangle if mode == "bilinear" else _cubic(-0.5 if antialias else -0.75)
        # NOTE: widening the filter by the scale when shrinking is what antialias means (PIL's resize);
        # without it a shrink samples the input as plain bilinear/bicubic interpolation does.
        stretch = max(scale, 1.0) if antialias else 1.0
        centers = (rows + 0.5) * scale  # output sample centres in input coordinates
        dist = (np.arange(n_in)[None, :] + 0.5 - centers[:, None]) / stretch  # (n_out, n_in)
        weights = kernel(dist)
        weights /= weights.sum(axis=1, keepdims=True)  # clamps at the borders, as both PIL and torch
    if len(_weights_cache) > 256:
        _weights_cache.clear()
    _weights_cache[key] = weights
    return weights


def resize(x, height: int, width: int, mode: str, antialias: bool):
    """Resize the last two axes to (height, width); integer images are rounded and clamped back."""
    xp = get_array_module(x)
    h, w = x.shape[-2:]
    work = x.dtype if is_float(x) else np.float32
    wh = xp.asarray(resize_weights(h, height, mode, antialias), dtype=work)  # (height, h)
    ww = xp.asarray(resize_weights(w, width, mode, antialias), dtype=work)  # (width, w)
    y = wh @ (x.astype(work, copy=False) @ ww.T)  # (..., h, width) then (..., height, width)
    if is_float(x):
        return y
    if mode.startswith("nearest"):
        return y.round().astype(x.dtype)
    return xp.clip(xp.rint(y), 0, bound(x)).astype(x.dtype)


# ---- colour -------------------------------------------------------------------------------------

def rgb_to_grayscale(x, num_output_channels: int = 1):
    """0.2989 R + 0.587 G + 0.114 B over axis -3, in x's dtype (integer images truncate, as torchvision)."""
    xp = get_array_module(x)
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    gray = (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).astype(x.dtype)[..., None, :, :]  # (..., 1, H, W)
    if num_output_channels == 3:
        gray = xp.broadcast_to(gray, x.shape).copy()
    return gray


def blend(x, other, ratio: float):
    """ratio * x + (1 - ratio) * other, clamped to the value range, back in x's dtype."""
    xp = get_array_module(x)
    work = x.dtype if is_float(x) else np.float32
    y = ratio * x.astype(work, copy=False) + (1.0 - ratio) * other
    return xp.clip(y, 0, bound(x)).astype(x.dtype, copy=False)


def adjust_brightness(x, factor: float):
    return blend(x, 0.0, factor)


def adjust_contrast(x, factor: float):
    gray = rgb_to_grayscale(x) if x.shape[-3] == 3 else x
    work = x.dtype if is_float(x) else np.float32
    mean = gray.astype(work).mean(axis=(-3, -2, -1), keepdims=True)  # (..., 1, 1, 1)
    return blend(x, mean, factor)


def adjust_saturation(x, factor: float):
    if x.shape[-3] == 1:  # a grayscale image has no saturation: torchvision returns it as it is
        return x.copy()
    return blend(x, rgb_to_grayscale(x).astype(np.float32 if not is_float(x) else x.dtype), factor)


def _rgb_to_hsv(x):
    """(..., 3, H, W) floats in [0, 1] -> h, s, v each (..., H, W), h in [0, 1)."""
    xp = get_array_module(x)
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    maxc, minc = x.max(axis=-3), x.min(axis=-3)
    span = maxc - minc
    safe = xp.where(span == 0, 1.0, span)
    s = span / xp.where(maxc == 0, 1.0, maxc)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = xp.where(maxc == r, bc - gc, xp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = xp.where(span == 0, 0.0, (h / 6.0) % 1.0)
    return h, s, maxc


def _hsv_to_rgb(h, s, v):
    """The inverse of _rgb_to_hsv -> (..., 3, H, W)."""
    xp = get_array_module(v)
    i = xp.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(np.int64) % 6
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    # sector k of the hue circle takes (r, g, b) from these
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    r, g, b = (xp.select([i == k for k in range(6)], [row[c] for row in table]) for c in range(3))
    return xp.stack([r, g, b], axis=-3)


def adjust_hue(x, hue_factor: float):
    if x.shape[-3] == 1:
        return x.copy()
    work = x.astype(np.float32) / 255.0 if not is_float(x) else x
    h, s, v = _rgb_to_hsv(work)
    y = _hsv_to_rgb((h + hue_factor) % 1.0, s, v).astype(work.dtype, copy=False)
    return (y * 255.0).astype(x.dtype) if not is_float(x) else y


def normalize(x, mean, std, inplace: bool = False):
    """(x - mean[c]) / std[c] over axis -3; `mean`, `std` already (C, 1, 1) arrays of x's dtype."""
    xp = get_array_module(x)
    if inplace:
        xp.subtract(x, mean, out=x)
        xp.divide(x, std, out=x)
        return x
    out = xp.subtract(x, mean)
    xp.divide(out, std, out=out)
    return out


# float -> int casts whose scale is not exact in the (at least float32) working dtype: 1.0 would overflow
_UNSAFE_CASTS = {(np.dtype(a), np.dtype(b)) for a, b in ((np.float32, np.int32), (np.float32, np.int64),
                                                          (np.float64, np.int64), (np.float16, np.int32),
                                                          (np.float16, np.int64))}


def convert_dtype(x, dtype):
    """torchvision's convert_image_dtype on arrays: rescale between [0, 1] floats and the integer ranges."""
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    if is_float(x):
        if dtype.kind == "f":
            return x.astype(dtype)
        if (x.dtype, dtype) in _UNSAFE_CASTS:
            raise RuntimeError(f"convert_image_dtype: the cast from {x.dtype} to {dtype} cannot be performed safely")
        # NOTE: (max + 1 - eps) maps 1.0 to max and splits [0, 1] into max + 1 equal bins; float16 cannot hold
        # 255.999 (it rounds to 256, sending 1.0 to 0), so the product is taken in float32 at least.
        top = float(np.iinfo(dtype).max)
        return (x.astype(np.promote_types(x.dtype, np.float32), copy=False) * (top + 1.0 - 1e-3)).astype(dtype)
    top_in = int(np.iinfo(x.dtype).max)
    if dtype.kind == "f":
        return x.astype(dtype) / dtype.type(top_in)
    top_out = int(np.iinfo(dtype).max)
    if top_in > top_out:
        return (x // ((top_in + 1) // (top_out + 1))).astype(dtype)
    return x.astype(dtype) * ((top_out + 1) // (top_in + 1))


def erase(x, top: int, left: int, height: int, width: int, value, inplace: bool = False):
    out = x if inplace else x.copy()
    if hasattr(value, "shape"):  # a host array (drawn noise) moves to x's device
        value = get_array_module(x).asarray(value, dtype=x.dtype)
    out[..., top:top + height, left:left + width] = value
    return out


def gaussian_kernel1d(size: int, sigma: float) -> np.ndarray:
    half = (size - 1) * 0.5
    k = np.exp(-0.5 * (np.linspace(-half, half, size) / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x, kernel_size, sigma):
    """Separable blur with reflect padding (torchvision's), kernel_size (kw, kh), sigma (sx, sy)."""
    xp = get_array_module(x)
    kw, kh = kernel_size
    work = x.dtype if is_float(x) else np.float32
    y = xp.pad(x.astype(work), [(0, 0)] * (x.ndim - 2) + [(kh // 2, kh // 2), (kw // 2, kw // 2)], mode="reflect")
    h, w = x.shape[-2:]
    gx = xp.asarray(gaussian_kernel1d(kw, sigma[0]), dtype=work)
    gy = xp.asarray(gaussian_kernel1d(kh, sigma[1]), dtype=work)
    y = sum(gx[k] * y[..., :, k:k + w] for k in range(kw))  # (..., H + kh - 1, W)
    y = sum(gy[k] * y[..., k:k + h, :] for k in range(kh))  # (..., H, W)
    return y if is_float(x) else xp.clip(xp.rint(y), 0, bound(x)).astype(x.dtype)


def rotate(x, angle: float, mode: str, fill, expand: bool = False, center=None):
    """Rotate (..., C, H, W) counter-clockwise by angle degrees about center (default the image's centre).

    Each output pixel samples the input at the inversely rotated position (nearest or bilinear); the
    samples that fall outside the image take fill (a number or one per channel)."""
    xp = get_array_module(x)
    h, w = x.shape[-2:]
    quarter = angle % 360.0
    if center is None and (quarter in (0.0, 180.0) or quarter in (90.0, 270.0) and (expand or h == w)):
        # exact turns, as Pillow (which also keeps a 90-degree turn's box exactly (w, h))
        return xp.rot90(x, int(quarter // 90), axes=(-2, -1)).copy()
    c, s = round(math.cos(math.radians(angle)), 15), round(math.sin(math.radians(angle)), 15)
    # centres in pixel-centre coordinates (Pillow's centre (w/2, h/2) sits on pixel edges)
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if center is None else (center[0] - 0.5, center[1] - 0.5)
    oh, ow, ocx, ocy = h, w, cx, cy
    if expand:  # the bounding box of the rotated image, as Pillow computes it
        corners = ((0, 0), (w, 0), (w, h), (0, h))  # in edge coordinates, about Pillow's centre (w/2, h/2)
        xs = [c * (px - w / 2) - s * (py - h / 2) + w / 2 for px, py in corners]
        ys = [s * (px - w / 2) + c * (py - h / 2) + h / 2 for px, py in corners]
        ow, oh = math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))
        ocx, ocy = (ow - 1) / 2, (oh - 1) / 2
    oy, ox = np.mgrid[0:oh, 0:ow].astype(np.float64)
    ox, oy = ox - ocx, oy - ocy
    sx, sy = c * ox - s * oy + cx, s * ox + c * oy + cy  # (oh, ow): where each output pixel looks
    work = x.dtype if is_float(x) else np.float32
    fill_value = xp.asarray(fill if isinstance(fill, (tuple, list)) else [fill], dtype=work).reshape(-1, 1, 1)
    if mode.startswith("nearest"):
        taps = [(np.floor(sx + 0.5), np.floor(sy + 0.5), 1.0)]
    else:
        x0, y0 = np.floor(sx), np.floor(sy)
        fx, fy = sx - x0, sy - y0
        taps = [(x0, y0, (1 - fx) * (1 - fy)), (x0 + 1, y0, fx * (1 - fy)),
                (x0, y0 + 1, (1 - fx) * fy), (x0 + 1, y0 + 1, fx * fy)]
    out = 0
    for tx, ty, weight in taps:
        inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
        ix, iy = np.clip(tx, 0, w - 1).astype(np.int64), np.clip(ty, 0, h - 1).astype(np.int64)
        values = x[..., xp.asarray(iy), xp.asarray(ix)].astype(work)  # (..., oh, ow)
        out = out + xp.asarray(weight, dtype=work) * xp.where(xp.asarray(inside), values, fill_value)
    if is_float(x):
        return out.astype(x.dtype, copy=False)
    return xp.clip(xp.rint(out), 0, bound(x)).astype(x.dtype)


def channel_count(x) -> int:
    return 1 if x.ndim == 2 else int(x.shape[-3])


__all__ = ["hflip", "vflip", "crop", "pad", "resize", "resize_weights", "rgb_to_grayscale", "blend",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "normalize",
           "convert_dtype", "erase", "gaussian_blur", "rotate", "channel_count"]
