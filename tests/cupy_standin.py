"""A CuPy stand-in on the CPU: `minires.backend.use_cupy(cupy_standin)` makes device "cuda:0" real
enough that every `cuda` code path of minires runs in the tests without a GPU.

What it copies from CuPy (the parts minires touches):
- `ndarray` is its own type, not a `numpy.ndarray`; it computes with NumPy underneath.
- `.data` is a `MemoryPointer` (not an array), `.device.id`, `.get()`; reductions return 0-d arrays.
- Implicit conversion to NumPy raises TypeError (`np.asarray(a)`, a NumPy buffer receiving it), and a
  NumPy array as an operand of a device op raises TypeError, as CuPy does.
- `asarray`/`array` copy host data in (counted as host-to-device), `asnumpy`, `.get()`, `float(a)`,
  `int(a)`, `bool(a)`, `.item()` and `.tolist()` copy out (counted as device-to-host: each is a sync).
- `cuda.Device/Stream/Event/runtime/get_current_stream/get_elapsed_time`, and `get_default_memory_pool()`
  whose used_bytes() counts the buffers that live device arrays hold.
- `RawModule(code=..., options=("-D...",))` builds the CUDA source on the CPU through
  tests/cuda_emulator.py and runs each launch block by block, thread by thread.

Run a program under it: `MINIRES_CUPY_MODULE=cupy_standin PYTHONPATH=tests minires train --device cuda ...`
(what `benchmarks/gpu_check.sh` does with DEVICE=standin).
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
import time
import types
import weakref

import numpy as np

__version__ = "0.0-standin"
_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")


class _Transfers:
    """Counts of copies between host and device since the last reset()."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.d2h = 0
        self.h2d = 0


transfers = _Transfers()


# ---- arrays -----------------------------------------------------------------------------------
def _unwrap(obj):
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError(f"Unsupported type {type(obj)}")  # CuPy refuses host arrays as operands
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    return obj


def _wrap(obj):
    if isinstance(obj, np.ndarray):
        return ndarray(obj)
    if isinstance(obj, np.generic) and not isinstance(obj, (np.dtype,)):
        return ndarray(np.asarray(obj))  # CuPy reductions and scalar indexing give 0-d device arrays
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _device_fn(fn, name):
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))
    call.__name__ = name
    return call


class MemoryPointer:
    """What CuPy's `ndarray.data` is: a device address, not an array."""

    def __init__(self, ptr):
        self.ptr = ptr


class _Context:
    """A `with` block that changes nothing, and a synchronize() that returns at once (all is done
    by the time a stand-in call returns)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


class Device(_Context):
    """cupy.cuda.Device: the stand-in has one device, id 0."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")

    @property
    def compute_capability(self):
        return "90"

    def use(self):
        """Make this the current device (there is only one)."""


class ndarray:
    """A device array: NumPy storage behind CuPy's surface."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"cupy_standin.ndarray wraps a numpy.ndarray, got {type(a).__name__}")
        object.__setattr__(self, "_a", a)
        _memory_pool.hold(a)

    # CuPy's own attributes
    @property
    def data(self):
        return MemoryPointer(self._a.ctypes.data)

    @property
    def device(self):
        return Device(0)

    def get(self, stream=None, order="C", out=None):
        transfers.d2h += 1
        return self._a.copy()

    def set(self, arr, stream=None):
        transfers.h2d += 1
        self._a[...] = arr

    # No implicit host conversion, as CuPy
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = getattr(ufunc, method)(*_unwrap(inputs), **{k: _unwrap(v) for k, v in kwargs.items()})
        return _wrap(out)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

    def __getattr__(self, name):
        if name.startswith("__") or name in ("ctypes", "base"):
            raise AttributeError(f"'cupy_standin.ndarray' object has no attribute {name!r}")
        value = getattr(self._a, name)
        if callable(value):
            return _device_fn(value, name)
        return _wrap(value) if isinstance(value, np.ndarray) else value

    # Copies to the host: each is a synchronisation on a GPU
    def _to_host_scalar(self):
        if self._a.size != 1:
            raise TypeError("only size-1 arrays can be converted to Python scalars")
        transfers.d2h += 1
        return self._a.reshape(()).item()

    def __float__(self):
        return float(self._to_host_scalar())

    def __int__(self):
        return int(self._to_host_scalar())

    def __index__(self):
        if self._a.dtype.kind not in "iu":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._to_host_scalar())

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return bool(self._to_host_scalar())

    def item(self):
        return self._to_host_scalar()

    def tolist(self):
        transfers.d2h += 1
        return self._a.tolist()

    # Indexing
    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray) and value.ndim > 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")  # CuPy's message
        self._a[_unwrap(key)] = value._a if isinstance(value, ndarray) else value

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(self._a[i]) for i in range(len(self._a)))

    def __repr__(self):  # CuPy copies the values to the host to print them
        transfers.d2h += 1
        return f"standin_array({self._a!r})"

    @property
    def T(self):
        return ndarray(self._a.T)


def _binary(name):
    def op(self, other):
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)}")
        out = getattr(self._a, name)(_unwrap(other))
        return NotImplemented if out is NotImplemented else _wrap(out)
    op.__name__ = name
    return op


def _inplace(name):
    def op(self, other):
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)}")
        getattr(self._a, name)(_unwrap(other))
        return self
    op.__name__ = name
    return op


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
           "lshift", "rshift"):
    setattr(ndarray, f"__{_n}__", _binary(f"__{_n}__"))
    setattr(ndarray, f"__r{_n}__", _binary(f"__r{_n}__"))
    setattr(ndarray, f"__i{_n}__", _inplace(f"__i{_n}__"))
for _n in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_n}__", _binary(f"__{_n}__"))
for _n in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_n}__", (lambda n: lambda self: _wrap(getattr(self._a, f"__{n}__")()))(_n))
ndarray.__hash__ = None


# ---- module-level functions -------------------------------------------------------------------
def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        out = a._a if dtype is None else a._a.astype(dtype, copy=False)
        return a if out is a._a else ndarray(np.asarray(out, order=order) if order else out)
    transfers.h2d += 1
    return ndarray(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, ndarray):
        return ndarray(np.array(a._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    transfers.h2d += 1
    return ndarray(np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


class _Ufunc:
    """A NumPy ufunc over device arrays (call and reduce)."""

    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        return _device_fn(self._uf, self.__name__)(*args, **kwargs)

    def __getattr__(self, name):
        return _device_fn(getattr(self._uf, name), name)


def __getattr__(name):
    """Everything else as NumPy's twin: types and constants as they are, functions over device arrays."""
    value = getattr(np, name)
    if isinstance(value, np.ufunc):
        return _Ufunc(value)
    if isinstance(value, type) or not callable(value):
        return value
    return _device_fn(value, name)


ndarray.__module__ = __name__
float16, float32, float64 = np.float16, np.float32, np.float64
int8, int32, int64, uint8, bool_ = np.int8, np.int32, np.int64, np.uint8, np.bool_
newaxis, nan, inf = None, np.nan, np.inf

# cupy.lib.stride_tricks.as_strided
lib = types.ModuleType(__name__ + ".lib")
lib.stride_tricks = types.ModuleType(__name__ + ".lib.stride_tricks")
lib.stride_tricks.as_strided = _device_fn(np.lib.stride_tricks.as_strided, "as_strided")
sys.modules[lib.__name__] = lib
sys.modules[lib.stride_tricks.__name__] = lib.stride_tricks

class _Generator:
    """cupy.random's functions and generators: device arrays drawn by a NumPy Generator."""

    def __init__(self, g):
        self._g = g

    def default_rng(self, seed=None):
        return _Generator(np.random.default_rng(seed))

    def __getattr__(self, name):
        return _device_fn(getattr(self._g, name), name)


random = _Generator(np.random.default_rng(0))


# ---- cupy.cuda --------------------------------------------------------------------------------
class Stream(_Context):
    null = None

    def __init__(self, non_blocking=False):
        self.non_blocking = non_blocking

    def use(self):
        return self


class Event:
    def __init__(self, *args, **kwargs):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


class _MemoryPool:
    """cupy.get_default_memory_pool(): used_bytes() counts the NumPy buffers that live device arrays hold."""

    def __init__(self):
        self._owners = weakref.WeakValueDictionary()  # id -> the base NumPy array of a live device array
        self.freed = 0  # free_all_blocks() calls, for the tests

    def hold(self, a):
        while isinstance(a.base, np.ndarray):  # a view: count the array that owns the memory, once
            a = a.base
        self._owners[id(a)] = a

    def used_bytes(self):
        return sum(a.nbytes for a in list(self._owners.values()))

    def free_all_blocks(self, stream=None):
        self.freed += 1  # NumPy frees a buffer as soon as its last array goes: nothing is cached


_memory_pool = _MemoryPool()


def get_default_memory_pool():
    return _memory_pool


class _Runtime:
    """cupy.cuda.runtime: one device, a CUDA 13 runtime and driver."""

    CUDARuntimeError = RuntimeError

    def getDeviceCount(self):
        return 1

    def getDeviceProperties(self, i):
        return {"name": b"CuPy stand-in (CPU)", "multiProcessorCount": 2, "totalGlobalMem": 24 * 2**30,
                "major": 9, "minor": 0, "clockRate": 0, "memoryClockRate": 0, "memoryBusWidth": 0}

    def runtimeGetVersion(self):
        return 13000

    def driverGetVersion(self):
        return 13000


Stream.null = Stream()
cuda = types.SimpleNamespace(
    Device=Device, Stream=Stream, Event=Event, runtime=_Runtime(), MemoryPointer=MemoryPointer,
    get_current_stream=lambda: Stream.null,
    get_elapsed_time=lambda start, end: (end.t - start.t) * 1e3,
    is_available=lambda: True,
)


class RawModule:
    """cupy.RawModule: the CUDA source built on the CPU (tests/cuda_emulator.py), with the -D options given."""

    def __init__(self, code, options=(), **kwargs):
        import cuda_emulator  # beside this file
        self.defines = dict(o[2:].split("=", 1) if "=" in o else (o[2:], "1") for o in options if o.startswith("-D"))
        self._lib = cuda_emulator.build(code, self.defines)

    def get_function(self, name):
        return _RawFunction(self._lib, name)


class _RawFunction:
    def __init__(self, lib, name):
        self.lib, self.name = lib, name

    def __call__(self, grid, block, args, **kwargs):
        import cuda_emulator
        cargs = [ctypes.c_ulonglong(int(grid[0])), ctypes.c_ulonglong(int(block[0]))]
        for a in args:
            if isinstance(a, np.ndarray):
                raise TypeError(f"kernel {self.name}: a numpy.ndarray cannot be passed to a CUDA kernel")
            if isinstance(a, ndarray):
                cargs.append(ctypes.c_void_p(a._a.ctypes.data))
            elif isinstance(a, np.generic):
                cargs.append(cuda_emulator._cscalar(a))
            else:
                raise TypeError(f"kernel {self.name}: pass scalars as NumPy scalars of the C type, got {a!r}")
        self.lib.run(self.name, cargs)


# ---- install ---------------------------------------------------------------------------------
@contextlib.contextmanager
def installed():
    """minires's backend using this module as CuPy inside the block."""
    from minires import backend
    from minires.kernels.cuda.launcher import cupy_launcher
    previous = backend.use_cupy(sys.modules[__name__])
    cupy_launcher.cache_clear()
    try:
        yield sys.modules[__name__]
    finally:
        backend.use_cupy(previous)
        cupy_launcher.cache_clear()
