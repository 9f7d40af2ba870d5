"""Array backends: NumPy on the CPU, CuPy on CUDA GPUs. The only module that imports CuPy."""
from __future__ import annotations

import numpy as np

try:  # CuPy is the optional `gpu` extra; everything on the CPU works without it.
    import cupy as _cupy
except Exception:  # ImportError, or a broken CUDA install raising at import
    _cupy = None


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def cupy_module():
    """The cupy module (for minires.cuda's kernel launcher); a clear error without CuPy."""
    if _cupy is None:
        raise RuntimeError("CuPy is not installed: install the gpu extra (pip install 'minires[gpu]')")
    return _cupy


def get_array_module(*arrays):
    """Return `cupy` if any argument is a CuPy array (or a Tensor holding one), else `numpy`."""
    if _cupy is not None:
        for a in arrays:
            a = getattr(a, "data", a) if not isinstance(a, np.ndarray) else a
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def parse_device(device) -> str:
    """Normalise a device spec to "cpu" or "cuda:N"; raise ValueError on anything else."""
    if device is None:
        return "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    d = device.strip().lower()
    if d == "cpu":
        return "cpu"
    if d == "cuda":
        return "cuda:0"
    if d.startswith("cuda:") and d[5:].isdigit():
        return d
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def device_of(array) -> str:
    """The device string of a raw array."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return "cpu"
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return f"cuda:{array.device.id}"
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")


def _require_cuda(device: str) -> int:
    if _cupy is None:
        raise RuntimeError(
            f"device {device!r} needs CuPy: install the gpu extra (pip install 'minires[gpu]')")
    index = int(device.split(":")[1])
    count = 0
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise RuntimeError(f"device {device!r}: CuPy is installed but no CUDA GPU is usable ({exc})") from None
    if index >= count:
        raise RuntimeError(f"device {device!r}: only {count} CUDA device(s) visible")
    return index


def xp_for(device: str):
    """The array module for a device string, checking that the device exists."""
    device = parse_device(device)
    if device == "cpu":
        return np
    _require_cuda(device)
    return _cupy


def to_device(array, device: str):
    """Copy a raw array to `device` ("cpu" or "cuda:N"); no copy when it already lives there."""
    device = parse_device(device)
    if device == "cpu":
        if isinstance(array, np.ndarray):
            return array
        if _cupy is not None and isinstance(array, _cupy.ndarray):
            return _cupy.asnumpy(array)
        return np.asarray(array)
    index = _require_cuda(device)
    if isinstance(array, _cupy.ndarray) and array.device.id == index:
        return array
    with _cupy.cuda.Device(index):
        return _cupy.asarray(array)


def to_numpy(array) -> np.ndarray:
    """Always a NumPy array, copying from the GPU when needed."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def synchronize(device: str = "cuda:0") -> None:
    """Wait for queued GPU work on `device`; a no-op on the CPU."""
    device = parse_device(device)
    if device != "cpu" and _cupy is not None:
        with _cupy.cuda.Device(int(device.split(":")[1])):
            _cupy.cuda.get_current_stream().synchronize()
