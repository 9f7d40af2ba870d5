"""Test-time augmentation: a model's logits averaged over weighted views of each image.

VIEWS maps a mode to its views, (dy, dx, mirrored, weight): the view shows the image moved by
(dy, dx) pixels, reflect-padded at the border, then mirrored left-right if asked. airbench's
"flip-shift" (its tta_level 2): the image and its mirror at 1/4 each, and the image shifted one
pixel up-left and one down-right, each with its mirror, at 1/8 each.
"""
from __future__ import annotations

from ..data.transforms import _pad
from ..backend import get_array_module
from ..tensor import Tensor

VIEWS = {
    "none": ((0, 0, False, 1.0),),
    "flip": ((0, 0, False, 0.5), (0, 0, True, 0.5)),
    "flip-shift": ((0, 0, False, 0.25), (0, 0, True, 0.25),
                   (-1, -1, False, 0.125), (-1, -1, True, 0.125), (1, 1, False, 0.125), (1, 1, True, 0.125)),
}


def view(x, dy: int, dx: int, mirrored: bool):
    """The (N, C, H, W) array x moved by (dy, dx) pixels with reflection at the border, then mirrored."""
    if dy or dx:
        xp = get_array_module(x)
        p = max(abs(dy), abs(dx))
        H, W = x.shape[2:]
        if p >= min(H, W):
            raise ValueError(f"tta: a {p}-pixel shift with reflection needs images larger than {p} pixels, got "
                             f"{H}x{W}")
        padded = _pad(xp, x, p, "reflect")  # (N, C, H + 2p, W + 2p); view pixel (i, j) = x pixel (i - dy, j - dx)
        x = padded[:, :, p - dy:p - dy + H, p - dx:p - dx + W]
    return x[..., ::-1] if mirrored else x


def tta_logits(model, x, mode: str = "none"):
    """sum over the views of mode of weight * model(view of x): (N, classes) logits."""
    if mode not in VIEWS:
        raise ValueError(f"tta: mode must be one of {tuple(VIEWS)}, got {mode!r}")
    data = x.array if isinstance(x, Tensor) else x
    if data.ndim != 4:
        raise ValueError(f"tta: expected a batch of shape (N, C, H, W), got {tuple(data.shape)}")
    total = None
    for dy, dx, mirrored, weight in VIEWS[mode]:
        v = view(data, dy, dx, mirrored)
        logits = model(Tensor(get_array_module(v).ascontiguousarray(v))) if (dy, dx, mirrored) != (0, 0, False) \
            else model(x if isinstance(x, Tensor) else Tensor(data))
        total = logits * weight if total is None else total + logits * weight
    return total
