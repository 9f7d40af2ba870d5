"""Hand-written CUDA kernels (kernels.cu) and the launcher that compiles them once per dtype through CuPy.

The kernel signatures are read from kernels.cu itself, so Python scalars are converted to the exact
C types (64-bit sizes, 32-bit ints, the array dtype for `scalar_t`) and arrays are checked against
the pointer types before a launch. `Launcher` holds that logic; `CupyLauncher` runs kernels on the
GPU, and the tests run the same source on the CPU through a C++ build of it (tests/cuda_emulator.py).

MINIRES_CUDA_KERNELS=0 turns the kernels off: CuPy arrays then take the generic array-code path.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np

SOURCE_PATH = Path(__file__).with_name("kernels.cu")
BLOCK = 256           # threads per block
MAX_BLOCKS = 65535    # grid-stride loops cover the rest

# C parameter type in kernels.cu -> how a Python argument is passed: an array of this dtype
# ("scalar" = the launch's float dtype), or a scalar converted to this numpy type.
_POINTERS = {"scalar_t": "scalar", "int": np.int32, "long long": np.int64, "bool": np.bool_}
_SCALARS = {"idx_t": np.int64, "int": np.int32, "scalar_t": "scalar"}


@functools.lru_cache(maxsize=1)
def source() -> str:
    return SOURCE_PATH.read_text()


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
    """Whether CuPy arrays of this dtype use the hand-written kernels (float32/float64 only;
    MINIRES_CUDA_KERNELS=0 turns them off). Other dtypes, float16 included, take the generic code."""
    return (xp.__name__ == "cupy" and dtype in (np.float32, np.float64)
            and os.environ.get("MINIRES_CUDA_KERNELS", "1") != "0")


class Launcher:
    """Checks and converts a kernel's arguments by its signature; subclasses run it."""

    block = BLOCK
    max_blocks = MAX_BLOCKS

    def __call__(self, name: str, total: int, *args) -> None:
        sig = signatures()[name]
        if len(args) != len(sig):
            raise TypeError(f"cuda kernel {name}: expected {len(sig)} arguments, got {len(args)}")
        dtype = next((a.dtype for (ptr, ctype, _), a in zip(sig, args) if ptr and ctype == "scalar_t"), None)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"cuda kernel {name}: float32 or float64 arrays needed, got {dtype}")
        converted = []
        for (ptr, ctype, pname), a in zip(sig, args):
            if ptr:
                want = dtype if _POINTERS[ctype] == "scalar" else np.dtype(_POINTERS[ctype])
                if a.dtype != want:
                    raise TypeError(f"cuda kernel {name}: argument '{pname}' must be {want}, got {a.dtype}")
                converted.append(a)
            else:
                kind = _SCALARS[ctype]
                converted.append(dtype.type(a) if kind == "scalar" else kind(a))
        if total > 0:
            grid = max(1, min(self.max_blocks, -(-total // self.block)))
            self.launch(name, dtype, grid, converted)

    def launch(self, name, dtype, grid, args):
        raise NotImplementedError


class CupyLauncher(Launcher):
    """Runs kernels on the current CUDA device; each dtype's module is compiled once (CuPy caches it on disk too)."""

    def __init__(self):
        self._modules = {}    # dtype -> RawModule
        self._functions = {}  # (dtype, name, device id) -> kernel function

    def launch(self, name, dtype, grid, args):
        from ..backend import cupy_module
        cp = cupy_module()
        key = (dtype, name, cp.cuda.Device().id)
        fn = self._functions.get(key)
        if fn is None:
            if dtype not in self._modules:
                ctype = "float" if dtype == np.float32 else "double"
                self._modules[dtype] = cp.RawModule(code=source(), options=(f"-Dscalar_t={ctype}", "-std=c++14"))
            fn = self._functions[key] = self._modules[dtype].get_function(name)
        fn((grid,), (self.block,), tuple(args))


@functools.lru_cache(maxsize=1)
def launcher() -> CupyLauncher:
    return CupyLauncher()
