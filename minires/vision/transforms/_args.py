"""Argument parsing shared by the functional calls and the transform classes: sizes, paddings, fills,
interpolation modes, with errors that name the caller."""
from __future__ import annotations

import enum
import numbers


class InterpolationMode(enum.Enum):
    """torchvision's interpolation names; tensors support nearest, nearest-exact, bilinear and bicubic."""
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL_CODES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}  # PIL's Resampling
_TENSOR_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic")


def interpolation_mode(mode, op: str) -> InterpolationMode:
    """An InterpolationMode from itself, its value ('bilinear') or a PIL resampling code (2)."""
    if isinstance(mode, InterpolationMode):
        return mode
    if isinstance(mode, str):
        try:
            return InterpolationMode(mode.lower())
        except ValueError:
            pass
    if isinstance(mode, int) and not isinstance(mode, bool):
        for value, code in _PIL_CODES.items():
            if code == mode:
                return InterpolationMode(value)
    names = ", ".join(m.value for m in InterpolationMode)
    raise ValueError(f"{op}: interpolation must be an InterpolationMode ({names}), got {mode!r}")


def parse_size(size, op: str, arg: str = "size") -> tuple:
    """(h, w) from an int or a sequence of 1 or 2 ints, all positive."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) in (1, 2) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size):
        size = (int(size[0]), int(size[-1]))
    else:
        raise TypeError(f"{op}: {arg} must be an int or a sequence of 1 or 2 ints, got {size!r}")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"{op}: {arg} must be positive, got {size!r}")
    return size


def parse_padding(padding, op: str) -> tuple:
    """(left, top, right, bottom) from an int or a sequence of 1, 2 (left/right, top/bottom) or 4 ints."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        p = (int(padding),) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) in (1, 2, 4) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in padding):
        p = tuple(int(v) for v in padding)
        p = p * 4 if len(p) == 1 else (p * 2 if len(p) == 2 else p)
    else:
        raise TypeError(f"{op}: padding must be an int or a sequence of 1, 2 or 4 ints, got {padding!r}")
    if min(p) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    return p


def check_fill(fill, op: str) -> None:
    if isinstance(fill, (tuple, list)):
        if not all(isinstance(v, numbers.Number) for v in fill):
            raise TypeError(f"{op}: fill must be a number or a sequence of numbers, got {fill!r}")
    elif not isinstance(fill, numbers.Number):
        raise TypeError(f"{op}: fill must be a number or a sequence of numbers, got {fill!r}")


_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def resized_output_size(h: int, w: int, size, max_size, op: str = "resize") -> tuple:
    """(new_h, new_w): an int (or [int]) matches the shorter edge keeping the aspect ratio, (h, w) is exact."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        if max_size is not None:
            raise ValueError(f"{op}: max_size is only allowed when size is an int (or a sequence of 1), got {size!r}")
        return parse_size(size, op)
    requested = parse_size(size, op)[0]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = requested, int(requested * long / short)
    if max_size is not None:
        if max_size <= requested:
            raise ValueError(f"{op}: max_size = {max_size} must be larger than the requested size {requested}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)
