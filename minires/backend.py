"""Array backends: NumPy on the CPU, CuPy on CUDA GPUs. The only module that imports CuPy."""
from __future__ import annotations

import builtins
import importlib
import os

import numpy as np

# CuPy is the optional `gpu` extra; everything on the CPU works without it. MINIRES_CUPY_MODULE
# names another module to use in its place (the tests' CPU stand-in, tests/cupy_standin.py, which
# benchmarks/gpu_check.sh uses to rehearse on a machine without a GPU).
try:
    _cupy = importlib.import_module(os.environ.get("MINIRES_CUPY_MODULE") or "cupy")
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


def use_cupy(module):
    """Make `module` the CuPy that minires uses (the tests' CPU stand-in, say); returns the previous one."""
    global _cupy, _checked
    previous, _cupy, _checked = _cupy, module, set()
    return previous


def is_cupy(xp) -> bool:
    """Whether an array module is the CuPy in use."""
    return _cupy is not None and xp is _cupy


def cupy_module():
    """The cupy module in use (the real one, or a stand-in given to use_cupy); a clear error without CuPy."""
    if _cupy is None:
        raise RuntimeError("CuPy is not installed: install the gpu extra (pip install 'minires[gpu]')")
    return _cupy


def get_array_module(*arrays):
    """Return `cupy` if any argument is a CuPy array (or a Tensor holding one), else `numpy`.

    A raw CuPy array is tested first: its own `.data` is a device pointer, not an array (a Tensor holds its array in `.array`).
    """
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, np.ndarray):
                continue
            if isinstance(a, _cupy.ndarray) or isinstance(getattr(a, "array", None), _cupy.ndarray):
                return _cupy
    return np


class device(str):
    """PyTorch's torch.device: device("cuda:1"), device("cuda", 1), device("cpu"), with .type and .index.

    It is a str subclass holding its name ("cpu", "cuda", "cuda:1"), so it goes wherever a device
    string goes (and equals that string, where PyTorch's device does not).
    """

    def __new__(cls, type="cpu", index=None):  # noqa: A002 - PyTorch's argument name
        if isinstance(type, device) and index is None:
            return type
        if _is_index(type) and index is None:  # device(1): the CUDA device 1, as PyTorch
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {builtins.type(type).__name__}")
        kind, colon, number = type.strip().lower().partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device: minires runs on 'cpu' and 'cuda' ('cuda:N'), got {type!r}")
        if colon:
            if index is not None:
                raise ValueError(f"device: {type!r} names an index and index={index!r} gives another")
            if not number.isdigit():
                raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {type!r}")
            index = int(number)
        if index is not None and (not _is_index(index) or index < 0):
            raise ValueError(f"device: index must be a non-negative int, got {index!r}")
        self = super().__new__(cls, kind if index is None else f"{kind}:{int(index)}")
        self._type, self._index = kind, None if index is None else int(index)
        return self

    @property
    def type(self) -> str:
        return self._type

    @property
    def index(self):
        return self._index

    def __repr__(self):
        index = "" if self._index is None else f", index={self._index}"
        return f"device(type='{self._type}'{index})"

    def __reduce__(self):
        return device, (str(self),)


def _is_index(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


_DEVICES = {}  # name -> its device object: parse_device and device_of hand out one object per device


def parse_device(spec) -> device:
    """Normalise a device spec (a string, a minires.device, a CUDA index or None) to device "cpu" or "cuda:N"."""
    if spec is None:
        spec = "cpu"
    if not isinstance(spec, str) and not _is_index(spec):
        raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {type(spec).__name__}")
    key = spec if isinstance(spec, str) else int(spec)
    found = _DEVICES.get(key)
    if found is None:
        d = device(spec)
        found = device("cpu" if d.type == "cpu" else f"cuda:{d.index or 0}")
        if len(_DEVICES) < 64:  # the specs a program uses are few: odd strings must not grow the table
            _DEVICES[key] = found
    return found


def device_of(array) -> "device":
    """The device of a raw array (a minires.device, equal to its string "cpu" or "cuda:N")."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return _CPU
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return parse_device(f"cuda:{array.device.id}")
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")


_CPU = parse_device("cpu")
_INSTALL = ("install the extra that matches the CUDA version nvidia-smi prints: "
            "pip install 'minires[gpu]' for CUDA 12, 'minires[gpu-cuda13]' for CUDA 13")
_checked = set()  # devices whose driver and CuPy build were found to match


def _check_driver(device: str) -> None:
    """A CuPy built for a newer CUDA than the driver supports fails at its first kernel launch with
    an obscure error; say it here, once, in one line."""
    try:
        rt, drv = _cupy.cuda.runtime.runtimeGetVersion(), _cupy.cuda.runtime.driverGetVersion()
    except Exception:
        return
    if drv and rt // 1000 > drv // 1000:
        raise RuntimeError(f"device '{device}': this CuPy is built for CUDA {rt // 1000}.{rt % 1000 // 10} "
                           f"but the driver supports CUDA {drv // 1000}.{drv % 1000 // 10}; {_INSTALL}")


def _require_cuda(device: str) -> int:
    if _cupy is None:
        raise RuntimeError(f"device '{device}' needs CuPy: {_INSTALL}")
    index = int(device.split(":")[1])
    count = 0
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise RuntimeError(f"device '{device}': CuPy is installed but no CUDA GPU is usable ({exc}); "
                           f"check the driver, or {_INSTALL}") from None
    if index >= count:
        raise RuntimeError(f"device '{device}': only {count} CUDA device(s) visible")
    if device not in _checked:
        _check_driver(device)
        _checked.add(device)
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
        return to_numpy(array)
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
