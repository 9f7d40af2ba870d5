"""Storages from raw bytes (byte order, bfloat16) and `map_location`: where each storage's tensors go."""
from __future__ import annotations

import warnings

import numpy as np

from .. import backend
from ..tensor import Tensor
from .restricted import Storage, UnpicklingError


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: shift the 16 bits up (exact, NumPy has no bfloat16)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def host_array(raw, dtype: str, numel: int, big_endian: bool, source: str, state: dict) -> np.ndarray:
    """The flat host array of `numel` elements of torch dtype `dtype` from a storage's bytes (writable)."""
    stored = np.dtype("uint16" if dtype == "bfloat16" else dtype)
    if big_endian:
        stored = stored.newbyteorder(">")
    need = numel * stored.itemsize
    if len(raw) < need:
        raise UnpicklingError(f"{source}: a storage of {numel} {dtype} elements needs {need} bytes, the file "
                              f"holds {len(raw)}: the file is truncated or corrupted")
    array = np.frombuffer(raw, dtype=stored, count=numel)
    # NOTE: a view of a writable file buffer is kept as it is (no copy); read-only, unaligned or
    # byte-swapped data is copied into a fresh array
    if not array.flags.writeable or not array.flags.aligned or big_endian:
        array = array.astype(stored.newbyteorder("="))
    if dtype == "bfloat16":
        if not state.get("warned_bfloat16"):
            warnings.warn(f"{source}: bfloat16 tensors are loaded as float32 (NumPy has no bfloat16); the values "
                          f"are exact", stacklevel=4)
            state["warned_bfloat16"] = True
        array = _bfloat16_to_float32(array)
    return array


def _device_of(value) -> str:
    """A map_location target as a device string: 'cpu', 'cuda', 'cuda:N' or a device object (str() of it)."""
    if isinstance(value, str):
        return backend.parse_device(value)
    if hasattr(value, "type") and hasattr(value, "index") and not callable(value):  # a minires.device
        return backend.parse_device(str(value))
    raise TypeError(f"load: map_location must be None, a device string ('cpu', 'cuda', 'cuda:N'), a device, "
                    f"a dict of location -> device or a callable(storage, location), got {type(value).__name__}")


def _saved_device(location: str) -> str:
    """The device a storage was saved on, as minires names it; a location minires lacks is the file's error."""
    try:
        return _device_of(location)
    except ValueError as exc:
        raise UnpicklingError(f"its tensors were saved on {location!r}, which minires does not have ({exc}); pass "
                              f"map_location='cpu'") from None


def location_mapper(map_location):
    """fn(host array, saved location) -> the device string its tensors go to, as torch.load's map_location."""
    if map_location is None:
        return lambda array, location: _saved_device(location)
    if isinstance(map_location, dict):
        table = {str(k): v for k, v in map_location.items()}
        for v in table.values():
            _device_of(v)  # a bad target fails now, naming its type
        return lambda array, location: _device_of(table[location]) if location in table else _saved_device(location)
    if callable(map_location) and not hasattr(map_location, "index"):
        def call(array, location):
            out = map_location(Tensor(array), location)
            if out is None:
                return _saved_device(location)
            if isinstance(out, Tensor):
                return out.device
            return backend.device_of(getattr(out, "array", out))
        return call
    device = _device_of(map_location)
    return lambda array, location: device


def make_storage(raw, pid: tuple, mapper, big_endian: bool, source: str, state: dict) -> Storage:
    """A Storage of the persistent id ('storage', dtype, key, location, numel, ...) from its bytes."""
    dtype, location, numel = pid[1], pid[3], pid[4]
    if not isinstance(location, str) or not isinstance(numel, int) or numel < 0:
        raise UnpicklingError(f"{source}: refusing the storage id {pid!r:.120}")
    if raw is None:  # scanning
        return Storage(None)
    array = host_array(raw, dtype, numel, big_endian, source, state)
    try:
        device = mapper(array, location)
    except UnpicklingError as exc:  # the file's own location is not a device (a callable's errors pass as raised)
        raise UnpicklingError(f"{source}: {exc}") from None
    if device != "cpu":
        try:
            backend.xp_for(device)
        except RuntimeError as exc:
            raise RuntimeError(f"{source}: the file holds tensors for {location!r}, mapped to '{device}', which is not "
                               f"available ({exc}); pass map_location='cpu'") from None
    return Storage(array, device)
