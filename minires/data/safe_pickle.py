"""A restricted unpickler for the official CIFAR-10 python batches: plain containers and NumPy arrays only."""
from __future__ import annotations

import io
import os
import pickle

import numpy as np


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global outside the allow-list; nothing was imported or called."""


def _latin1_encode(text, encoding="latin1"):
    """Stand-in for `_codecs.encode`, which protocol-2 pickles written by Python 3 use to spell bytes."""
    # NOTE: the only call such pickles make is encode(str, 'latin1'); refuse every other codec so the
    # allow-list cannot be used to reach arbitrary codecs (zlib, base64...).
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode is only allowed as encode(str, 'latin1'), got encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_global(*names):
    """Look a NumPy attribute up in the already-imported package (never imports a module)."""
    obj = np
    try:
        for name in names:
            obj = getattr(obj, name)
    except AttributeError:
        return None
    return obj


# The exact globals needed to rebuild a plain ndarray: protocol <= 4 uses _reconstruct + ndarray + dtype,
# protocol 5 uses _frombuffer + dtype. Both the numpy 1.x (`numpy.core`) and 2.x (`numpy._core`) spellings
# map to the same objects of the installed NumPy.
_reconstruct = _numpy_global("_core", "multiarray", "_reconstruct") or _numpy_global("core", "multiarray", "_reconstruct")
_frombuffer = _numpy_global("_core", "numeric", "_frombuffer") or _numpy_global("core", "numeric", "_frombuffer")
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle._Unpickler):  # noqa: SLF001 - Python's own unpickler, see the NOTE
    """An Unpickler whose find_class only returns the objects in ALLOWED_GLOBALS and refuses the rest.

    NOTE: Python's pure-Python unpickler, not the C one: the C one grows its memo to any index a file names
    (a 10-byte LONG_BINPUT of 2**32 - 16 allocates 64 GiB), and its BUILD setattr()s on any object. Here the
    memo is a dict and BUILD is admitted only on the ndarrays and dtypes the allow-list made. The batches are
    a few large byte strings, so the slower opcode loop costs nothing measurable.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # noqa: SLF001

    def _build(self):
        target = self.stack[-2]  # BUILD pops the state, then sets it on the object below
        if type(target) is not np.ndarray and not isinstance(target, np.dtype):
            raise UnsafePickleError(f"{self.source}: refusing to set the state of a {type(target).__name__} "
                                    f"(only NumPy arrays and dtypes are rebuilt)")
        pickle._Unpickler.load_build(self)  # noqa: SLF001 - NumPy's own __setstate__ on its own types

    dispatch[pickle.BUILD[0]] = _build

    def __init__(self, file, *, source: str = "<stream>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module, name):
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle global '{module}.{name}': only plain containers and "
                f"NumPy arrays are allowed (allow-list: {sorted(f'{m}.{n}' for m, n in ALLOWED_GLOBALS)})")
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refusing a persistent id in the pickle")


def _check_arrays(obj, source):
    """Refuse object arrays: they would carry arbitrary Python objects inside a 'plain' ndarray."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or type(obj) is not np.ndarray:
            raise UnsafePickleError(f"{source}: refusing an ndarray of dtype {obj.dtype} / type {type(obj).__name__}")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_arrays(k, source)
            _check_arrays(v, source)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_arrays(v, source)


def loads(data: bytes, source: str = "<bytes>"):
    """Unpickle `data` with the restricted unpickler (bytes strings of Python 2 pickles stay bytes)."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), source=source, encoding="bytes").load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated / corrupted stream: EOFError, UnpicklingError, ValueError...
        raise ValueError(f"{source}: not a valid pickle file ({type(exc).__name__}: {exc})") from None
    _check_arrays(obj, source)
    return obj


def load(path) -> object:
    """Unpickle the file at `path` with the restricted unpickler; errors name the file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, source=path)
