"""torchvision.utils: make_grid tiles a batch of images into one, save_image writes it through Pillow."""
from __future__ import annotations

import io
import math
import os
import sys

import numpy as np

from .. import missing
from ..backend import get_array_module, to_numpy
from ..io import atomic_write_bytes
from ..tensor import Tensor


def _as_batch(tensor):
    """A (B, C, H, W) array from a Tensor (H, W), (C, H, W), (B, C, H, W) or a list of (C, H, W) Tensors."""
    if isinstance(tensor, (list, tuple)):
        if not tensor or not all(isinstance(t, Tensor) for t in tensor):
            raise TypeError("make_grid: tensor must be a Tensor or a non-empty list of Tensors")
        shapes = {t.shape for t in tensor}
        if len(shapes) != 1:
            raise ValueError(f"make_grid: the images of the list differ in shape: {sorted(shapes)}")
        xp = get_array_module(tensor[0].array)
        return xp.stack([t.array for t in tensor])
    if not isinstance(tensor, Tensor):
        raise TypeError(f"make_grid: tensor must be a Tensor or a list of Tensors, got {type(tensor).__name__}")
    x = tensor.array
    if x.ndim == 2:
        x = x[None]  # (1, H, W)
    if x.ndim == 3:
        x = x[None]  # (1, C, H, W)
    if x.ndim != 4:
        raise ValueError(f"make_grid: expected a tensor of 2, 3 or 4 dimensions (B, C, H, W), got shape {tensor.shape}")
    return x


def _rescale(x, low, high):
    """Clamp to [low, high] and map it onto [0, 1]."""
    xp = get_array_module(x)
    return (xp.clip(x, low, high) - low) / max(high - low, 1e-5)


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False, value_range=None,
              scale_each: bool = False, pad_value: float = 0.0) -> Tensor:
    """Tile images (B, C, H, W) into one (C, rows * (H + padding) + padding, cols * (W + padding) + padding).

    nrow images per row; one-channel images become three channels; normalize maps value_range (or the
    batch's min..max, or each image's with scale_each) onto [0, 1]. A single image comes back unpadded."""
    if not isinstance(nrow, int) or nrow <= 0 or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"make_grid: nrow must be a positive int and padding a non-negative int, "
                         f"got nrow={nrow!r}, padding={padding!r}")
    x = _as_batch(tensor)
    xp = get_array_module(x)
    if x.shape[1] == 1:
        x = xp.concatenate([x, x, x], axis=1)  # (B, 3, H, W)
    if normalize:
        x = x.astype(np.float32) if x.dtype.kind != "f" else x.copy()
        if value_range is not None and not (isinstance(value_range, (tuple, list)) and len(value_range) == 2):
            raise ValueError(f"make_grid: value_range must be a (min, max) pair, got {value_range!r}")
        if scale_each:
            for i in range(len(x)):
                lo, hi = value_range if value_range is not None else (float(x[i].min()), float(x[i].max()))
                x[i] = _rescale(x[i], lo, hi)
        else:
            lo, hi = value_range if value_range is not None else (float(x.min()), float(x.max()))
            x = _rescale(x, lo, hi)
    if x.shape[0] == 1:
        return Tensor(x[0])
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = int(math.ceil(n / cols))
    cell_h, cell_w = h + padding, w + padding
    grid = xp.full((c, rows * cell_h + padding, cols * cell_w + padding), pad_value, dtype=x.dtype)
    for k in range(n):
        top, left = (k // cols) * cell_h + padding, (k % cols) * cell_w + padding
        grid[:, top:top + h, left:left + w] = x[k]
    return Tensor(grid)


def _format_of(fp, format):
    """Pillow's format name for fp (from its extension) unless format is given."""
    from PIL import Image
    if format is not None:
        return format
    name = os.fspath(fp) if isinstance(fp, (str, os.PathLike)) else getattr(fp, "name", None)
    if not isinstance(name, str):
        raise ValueError("save_image: fp is a file object without a name: pass format= (e.g. 'PNG')")
    ext = os.path.splitext(name)[1].lower()
    formats = Image.registered_extensions()
    if ext not in formats:
        known = ", ".join(sorted(e for e in formats if formats[e] in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")))
        raise ValueError(f"save_image: unknown image extension {ext or '(none)'!r} in {name!r}; use one of "
                         f"{known}, or pass format=")
    return formats[ext]


def save_image(tensor, fp, nrow: int = 8, padding: int = 2, normalize: bool = False, value_range=None,
               scale_each: bool = False, pad_value: float = 0.0, format=None) -> None:
    """Write make_grid(tensor, ...) as an image file (values in [0, 1] -> bytes), atomically for a path."""
    from PIL import Image
    if isinstance(fp, (str, os.PathLike)) and (os.path.isdir(fp) or os.fspath(fp).endswith(("/", os.sep))):
        raise ValueError(f"save_image: fp must be a file name, got the folder {os.fspath(fp)!r}")
    fmt = _format_of(fp, format)
    grid = make_grid(tensor, nrow=nrow, padding=padding, normalize=normalize, value_range=value_range,
                     scale_each=scale_each, pad_value=pad_value).array
    grid = to_numpy(grid).astype(np.float32, copy=False)
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)  # (H, W, C)
    if pixels.shape[2] not in (1, 3, 4):
        raise ValueError(f"save_image: an image needs 1, 3 or 4 channels, got {pixels.shape[2]}")
    image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels))
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"save_image: Pillow cannot write format {fmt!r} for an image of mode {image.mode} "
                         f"({exc})") from None
    if isinstance(fp, (str, os.PathLike)):
        atomic_write_bytes(fp, buffer.getvalue())
    else:
        fp.write(buffer.getvalue())


__all__ = ["make_grid", "save_image"]

missing.install(sys.modules[__name__])  # a torchvision name minires lacks: an error naming it
