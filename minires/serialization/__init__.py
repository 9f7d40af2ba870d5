"""PyTorch checkpoint files without PyTorch: the zip container (read and written) and the legacy format (read).

minires.save / minires.load (minires/checkpoint.py) pick the format; this package reads a file's bytes,
tells its format from its content, and rebuilds the object through the restricted unpickler, which
never runs code named by the file.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from . import legacy, zip_format
from .pickle_writer import dumps
from .restricted import UnpicklingError
from .storages import location_mapper


def read_source(f, fn: str = "load") -> tuple:
    """(bytes or a writable memoryview, name for messages) of a path or a binary file object; missing files and
    folders named clearly."""
    if hasattr(f, "read"):
        data = f.read()
        if not isinstance(data, bytes):
            raise TypeError(f"{fn}: the file object must be opened in binary mode ('rb'), it returned "
                            f"{type(data).__name__}")
        return data, str(getattr(f, "name", "<file object>"))
    if not isinstance(f, (str, os.PathLike)):
        raise TypeError(f"{fn}: f must be a path or a binary file object, got {type(f).__name__}")
    path = os.fspath(f)
    if os.path.isdir(path):
        raise UnpicklingError(f"{fn}: {path!r} is a folder, not a checkpoint file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{fn}: {path!r} does not exist")
    with open(path, "rb") as fh:
        # a writable buffer, so that the tensors of a zip file can view their storages in it without a copy
        # (np.empty: not zero-filled first, as bytearray(n) would be)
        buffer = np.empty(os.fstat(fh.fileno()).st_size, dtype=np.uint8)
        n = fh.readinto(buffer)
    return memoryview(buffer)[:n], path


def is_safetensors(data: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header that fits in the file."""
    if len(data) < 10:
        return False
    (n,) = struct.unpack("<Q", data[:8])
    return 2 <= n <= len(data) - 8 and data[8:9] == b"{"


def detect(data: bytes, source: str):
    """'zip', 'legacy', 'safetensors' or None, from the content (never from the file's name)."""
    if zip_format.is_zip(data):
        return "zip"
    if is_safetensors(data):
        return "safetensors"
    if legacy.is_tar(data):
        raise UnpicklingError(f"load: {source!r} is in PyTorch's tar format (before PyTorch 0.4), which minires "
                              f"does not read: re-save it with a recent PyTorch")
    if data[:1] == b"\x80":  # a pickle: PyTorch's legacy files are pickles that start with its magic number
        if legacy.first_pickle(data, f"load: {source!r}") == legacy.MAGIC_NUMBER:
            return "legacy"
        raise UnpicklingError(f"load: {source!r} is a plain pickle, not a PyTorch checkpoint (no PyTorch magic "
                              f"number); minires reads only PyTorch's own formats and safetensors")
    return None


def load_torch(data: bytes, kind: str, source: str, map_location=None, encoding: str = "utf-8"):
    """The object of a PyTorch checkpoint of format `kind` ('zip' or 'legacy'), tensors mapped by map_location."""
    mapper = location_mapper(map_location)
    if kind == "zip":
        return zip_format.read_zip(data, mapper, source, encoding)
    return legacy.read_legacy(data, mapper, source, encoding)


def save_torch(obj) -> memoryview:
    """The bytes of `obj` in PyTorch's zip container, as torch.save writes it (torch.load reads it)."""
    pickled, storages = dumps(obj)
    return zip_format.write_zip(pickled, storages)


__all__ = ["UnpicklingError", "read_source", "detect", "load_torch", "save_torch", "is_safetensors",
           "location_mapper"]
