"""The launcher of the hand-written CUDA kernels (kernels.cu, beside this file): it compiles them once per
dtype and index width through CuPy and checks every launch's arguments.

The kernel signatures are read from kernels.cu itself, so Python scalars are converted to the exact
C types (32-bit sizes when every size and offset fits, else 64-bit; 32-bit ints; the array dtype
for `scalar_t`, float32 for `acc_t` of float16) and arrays are checked against
the pointer types before a launch. `Launcher` holds that logic; `CupyLauncher` runs kernels on the
GPU, and the tests run the same source on the CPU through a C++ build of it (tests/cuda_emulator.py).

ops.py wraps each kernel for arrays; the Functions beside it (activation, batchnorm, conv, grouped, loss, pooling)
are the CUDA fast paths. MINIRES_IMPL=reference runs the generic reference ops on CuPy arrays instead.
The tests run all of it without a GPU through a CuPy stand-in (tests/cupy_standin.py).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from ... import backend, tuning

SOURCE_PATH = Path(__file__).with_name("kernels.cu")
# 32-bit index arithmetic when every size and offset stays below this: a grid-stride loop steps at
# most tuning.MAX_BLOCKS * tuning.BLOCK (< 2**25) past a size before it stops, and that must not
# overflow either.
IDX32_LIMIT = 2**31 - 2**25

DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
# The dtype kernels compute and keep statistics in: float16 arrays are read and written as float16,
# with arithmetic, reductions and per-channel vectors in float32.
ACC_DTYPE = {np.dtype(np.float16): np.dtype(np.float32), np.dtype(np.float32): np.dtype(np.float32),
             np.dtype(np.float64): np.dtype(np.float64)}

# C parameter type in kernels.cu -> how a Python argument is passed: an array of this dtype
# ("scalar"/"acc" = the launch's element/accumulator dtype), or a scalar converted to this numpy type.
_POINTERS = {"scalar_t": "scalar", "acc_t": "acc", "int": np.int32, "long long": np.int64, "bool": np.bool_}
_SCALARS = {"idx_t": "idx", "int": np.int32, "acc_t": "acc"}


@functools.lru_cache(maxsize=1)
def source() -> str:
    """The text of kernels.cu (read once)."""
    return SOURCE_PATH.read_text()


def defines(dtype, idx32: bool) -> dict:
    """The -D macros that build kernels.cu for one element dtype and index width."""
    dtype = np.dtype(dtype)
    d = {"MINIRES_HALF": "1"} if dtype == np.float16 else {"scalar_t": "float" if dtype == np.float32 else "double"}
    if idx32:
        d["MINIRES_IDX32"] = "1"
    return d


@functools.lru_cache(maxsize=1)
def signatures() -> dict:
    """{kernel name: [(is_pointer, C base type, parameter name), ...]} parsed from kernels.cu."""
    sigs = {}
    for name, params in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', source()):
        parsed = []
        for p in params.split(","):
            m = re.fullmatch(r"\s*(const\s+)?([\w ]+?)\s*(\*)?\s*(\w+)\s*", p)
            if m is None:
                raise RuntimeError(f"kernels.cu: cannot parse parameter {p!r} of {name}")
            parsed.append((m.group(3) is not None, m.group(2), m.group(4)))
        sigs[name] = parsed
    return sigs


def enabled(xp, dtype) -> bool:
    """Whether CuPy arrays of this dtype can use the hand-written kernels (float16/32/64).
    Other dtypes take the reference ops."""
    return backend.is_cupy(xp) and np.dtype(dtype) in DTYPES


def _span(a) -> int:
    """1 + the largest element offset a kernel can reach from a's first element."""
    if a.size == 0:
        return 0
    return 1 + sum((d - 1) * abs(s) for d, s in zip(a.shape, a.strides)) // a.itemsize


class Launcher:
    """Checks and converts a kernel's arguments by its signature; subclasses run it.

    `block` (threads per block) and `max_blocks` (the grid's cap) are tuning.BLOCK and
    tuning.MAX_BLOCKS, read at each launch, unless set on the launcher (the emulator's tiny blocks).
    """

    def __getattr__(self, name):
        # block / max_blocks not set on this launcher: tuning's values at each launch (tests patch tuning)
        if name in ("block", "max_blocks"):
            return getattr(tuning, name.upper())
        raise AttributeError(name)

    def __call__(self, name: str, total: int, *args) -> None:
        sig = signatures()[name]
        if len(args) != len(sig):
            raise TypeError(f"cuda kernel {name}: expected {len(sig)} arguments, got {len(args)}")
        # The element dtype, from the first scalar_t array (or, for kernels on accumulators only, acc_t)
        dtype = next((a.dtype for want in ("scalar_t", "acc_t") for (ptr, ctype, _), a in zip(sig, args)
                      if ptr and ctype == want), None)
        if dtype is None or dtype not in DTYPES:
            raise TypeError(f"cuda kernel {name}: float16, float32 or float64 arrays needed, got {dtype}")
        kinds = {"scalar": dtype, "acc": ACC_DTYPE[dtype]}
        arrays = [a for (ptr, _, _), a in zip(sig, args) if ptr]
        idx32 = max([int(total)] + [_span(a) for a in arrays]) < IDX32_LIMIT
        kinds["idx"] = np.dtype(np.int32 if idx32 else np.int64)
        converted = []
        for (ptr, ctype, pname), a in zip(sig, args):
            if ptr:
                want = np.dtype(kinds.get(_POINTERS[ctype], _POINTERS[ctype]))
                if a.dtype != want:
                    raise TypeError(f"cuda kernel {name}: argument '{pname}' must be {want}, got {a.dtype}")
                converted.append(a)
            else:
                kind = _SCALARS[ctype]
                converted.append(np.dtype(kinds.get(kind, kind)).type(a))
        if total > 0:
            grid = max(1, min(self.max_blocks, -(-total // self.block)))
            self.launch(name, dtype, idx32, grid, converted)

    def launch(self, name, dtype, idx32, grid, args):
        raise NotImplementedError


class CupyLauncher(Launcher):
    """Runs kernels on the current CUDA device; each (dtype, index width) module is compiled once
    (CuPy caches it on disk too)."""

    def __init__(self):
        self._modules = {}    # (dtype, idx32) -> RawModule
        self._functions = {}  # (dtype, idx32, name, device id) -> kernel function

    def launch(self, name, dtype, idx32, grid, args):
        cp = backend.cupy_module()
        key = (dtype, idx32, name, cp.cuda.Device().id)
        fn = self._functions.get(key)
        if fn is None:
            if (dtype, idx32) not in self._modules:
                options = tuple(f"-D{k}={v}" for k, v in defines(dtype, idx32).items())  # CuPy's default C++ standard
                self._modules[dtype, idx32] = cp.RawModule(code=source(), options=options)
            fn = self._functions[key] = self._modules[dtype, idx32].get_function(name)
        fn((grid,), (self.block,), tuple(args))


@functools.lru_cache(maxsize=1)
def cupy_launcher() -> CupyLauncher:
    """The one CupyLauncher of this process (its compiled modules are reused by every fast path)."""
    return CupyLauncher()
