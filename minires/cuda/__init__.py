"""PyTorch's torch.cuda for scripts: is a GPU there, which one, wait for it, free CuPy's cached memory.

The namespace only: the CUDA kernels and their launcher are minires/kernels/cuda. Every answer comes
through minires.backend, the one module that imports CuPy. Without CuPy or a GPU, is_available() is
False, device_count() and memory_allocated() are 0, synchronize() and empty_cache() do nothing, and
current_device(), set_device() and get_device_name() raise a RuntimeError saying so.

Random numbers: minires draws every one from its one CPU generator (minires.manual_seed) and copies
it to the device, so there is no CUDA generator to seed: manual_seed and manual_seed_all accept a
seed as PyTorch's do and change nothing (minires.manual_seed already fixes what runs on the GPU).

set_device(d) makes d CuPy's current device; minires's device string "cuda" still means "cuda:0"
(PyTorch's means the current device): name the device, "cuda:1", to use another GPU.
"""
from __future__ import annotations

import numbers

from .. import backend
from ..ops.convert import LEGACY_TYPES, tensor_type
from . import amp


def _parse(fn: str, device):
    """A CUDA device given as an int, "cuda"/"cuda:N" or a device object -> its index, or None for the current one."""
    if device is None:
        return None
    if isinstance(device, numbers.Integral) and not isinstance(device, bool):
        return int(device)
    if isinstance(device, str):
        name = device
    elif isinstance(getattr(device, "type", None), str):  # a device object: .type and .index, as torch.device
        index = getattr(device, "index", None)
        name = device.type if index is None else f"{device.type}:{index}"
    else:
        raise TypeError(f"minires.cuda.{fn}: argument 'device' must be an int, a string such as 'cuda:0' "
                        f"or a device, got {type(device).__name__}")
    if name.strip().lower() == "cuda":
        return None
    try:
        parsed = backend.parse_device(name)
    except ValueError:
        parsed = "cpu"
    if parsed == "cpu":
        raise ValueError(f"minires.cuda.{fn}: argument 'device' must be a CUDA device such as 'cuda:0', got {device!r}")
    return int(parsed.split(":")[1])


def _device_index(fn: str, device) -> int:
    """The index of an existing CUDA device (None: the current one); a RuntimeError without any."""
    index = _parse(fn, device)
    if not backend.cupy_available():
        raise RuntimeError(f"minires.cuda.{fn}: no CUDA device is available (CuPy is not installed or sees no "
                           f"GPU); install the gpu extra on a machine with an NVIDIA GPU")
    cp = backend.cupy_module()
    if index is None:
        return int(cp.cuda.Device().id)
    count = device_count()
    if not 0 <= index < count:
        raise ValueError(f"minires.cuda.{fn}: device {device!r} does not exist: {count} CUDA device(s) visible")
    return index


def is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return backend.cupy_available()


def device_count() -> int:
    """How many CUDA devices CuPy sees (0 without CuPy or a GPU)."""
    if not backend.cupy_available():
        return 0
    return int(backend.cupy_module().cuda.runtime.getDeviceCount())


def current_device() -> int:
    """The index of CuPy's current CUDA device."""
    return _device_index("current_device", None)


def set_device(device) -> None:
    """Make `device` CuPy's current device; a negative index does nothing, as in PyTorch."""
    if isinstance(device, numbers.Integral) and not isinstance(device, bool) and device < 0:
        return
    index = _device_index("set_device", device)
    backend.cupy_module().cuda.Device(index).use()


def get_device_name(device=None) -> str:
    """The GPU's name as the driver reports it (the current device by default)."""
    index = _device_index("get_device_name", device)
    name = backend.cupy_module().cuda.runtime.getDeviceProperties(index)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize(device=None) -> None:
    """Wait until all work queued on the device (the current one by default) is done; nothing without a GPU."""
    if not backend.cupy_available():
        _parse("synchronize", device)  # bad arguments are errors even here
        return
    backend.cupy_module().cuda.Device(_device_index("synchronize", device)).synchronize()


def _seed(fn: str, seed) -> None:
    try:
        int(seed)
    except (TypeError, ValueError):
        raise TypeError(f"minires.cuda.{fn}: argument 'seed' must be an integer, got {seed!r}") from None


def manual_seed(seed) -> None:
    """Accepted and does nothing: minires has no CUDA generator (see this module's docstring)."""
    _seed("manual_seed", seed)


def manual_seed_all(seed) -> None:
    """Accepted and does nothing: minires has no CUDA generator (see this module's docstring)."""
    _seed("manual_seed_all", seed)


def empty_cache() -> None:
    """Give the blocks that CuPy's memory pool holds unused back to the driver; nothing without a GPU."""
    if backend.cupy_available():
        backend.cupy_module().get_default_memory_pool().free_all_blocks()


def memory_allocated(device=None) -> int:
    """Bytes of the device's memory held by live arrays (CuPy's memory pool; 0 without a GPU)."""
    if not backend.cupy_available():
        _parse("memory_allocated", device)
        return 0
    cp = backend.cupy_module()
    with cp.cuda.Device(_device_index("memory_allocated", device)):  # the pool answers for the current device
        return int(cp.get_default_memory_pool().used_bytes())


# The legacy CUDA tensor types (torch.cuda.FloatTensor ...): isinstance checks and t.type(cuda.FloatTensor).
globals().update({name: tensor_type(name, "cuda") for name in LEGACY_TYPES})

__all__ = ["amp", "current_device", "device_count", "empty_cache", "get_device_name", "is_available",
           "manual_seed", "manual_seed_all", "memory_allocated", "set_device", "synchronize"]
