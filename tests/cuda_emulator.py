"""Runs minires/kernels/cuda/kernels.cu on the CPU: a C++ build in which each launch loops over every
(block, thread) in turn. Valid because the kernels follow the rules stated in kernels.cu (one writer
per output, no shared memory, no __syncthreads); it checks their index arithmetic and math, not
CUDA-specific behaviour (memory coalescing, occupancy, float rounding of fused multiply-adds).

float16 builds use the compiler's _Float16 for the conversions that the GPU does with cvt
instructions (round to nearest even both ways).

`build(code, defines)` is what the CuPy stand-in's RawModule uses; `EmulatedLauncher` runs the
kernels straight on NumPy arrays.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from minires.kernels.cuda import launcher

PRELUDE = r"""
#define MINIRES_EMULATOR 1
#include <cmath>
#include <cstring>
using std::exp; using std::log;
struct emu_dim3 { unsigned long long x; };
static emu_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__ static
#ifdef MINIRES_HALF
static inline float to_acc(unsigned short v) { _Float16 h; std::memcpy(&h, &v, 2); return (float)h; }
static inline unsigned short to_scalar(float f) { _Float16 h = (_Float16)f; unsigned short v; std::memcpy(&v, &h, 2); return v; }
#endif
"""

_DIR = tempfile.mkdtemp(prefix="minires-cuda-emu-")


def compiler():
    return shutil.which("g++") or shutil.which("c++")


def _signatures(code: str) -> dict:
    return {name: [p.strip() for p in params.split(",")]
            for name, params in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', code)}


class EmulatedLibrary:
    """One build of the source: run(name, ctypes args) loops the kernel over its grid."""

    def __init__(self, so_path):
        self._lib = ctypes.CDLL(str(so_path))

    def run(self, name, cargs):
        getattr(self._lib, f"emu_{name}")(*cargs)


@functools.lru_cache(maxsize=None)
def _build_cached(code: str, defines: tuple) -> EmulatedLibrary:
    wrappers = []
    for name, params in _signatures(code).items():
        args = ", ".join(re.sub(r"^const\s+", "", p).split("*")[-1].split()[-1] for p in params)
        wrappers.append(f'extern "C" void emu_{name}(unsigned long long grid, unsigned long long block, '
                        f'{", ".join(params)}) {{\n'
                        f"  gridDim.x = grid; blockDim.x = block;\n"
                        f"  for (unsigned long long b = 0; b < grid; ++b) for (unsigned long long t = 0; t < block; ++t)\n"
                        f"    {{ blockIdx.x = b; threadIdx.x = t; {name}({args}); }}\n}}\n")
    text = "".join(f"#define {k} {v}\n" for k, v in defines) + PRELUDE + code + "\n" + "\n".join(wrappers)
    tag = hashlib.sha1(text.encode()).hexdigest()[:16]
    src, so = Path(_DIR) / f"k_{tag}.cpp", Path(_DIR) / f"k_{tag}.so"
    src.write_text(text)
    r = subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", str(so), str(src)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"emulator build failed ({dict(defines)}):\n{r.stderr[-3000:]}")
    return EmulatedLibrary(so)


def build(code: str, defines: dict) -> EmulatedLibrary:
    return _build_cached(code, tuple(sorted(defines.items())))


def _cscalar(value):
    """A NumPy scalar as the ctypes value of its C type (float16 as its bits)."""
    if value.dtype == np.float16:
        return ctypes.c_ushort(int(value.view(np.uint16)))
    return {np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.int32): ctypes.c_int,
            np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double,
            np.dtype(np.bool_): ctypes.c_bool}[value.dtype](value)


class EmulatedLauncher(launcher.Launcher):
    """A Launcher over NumPy arrays; small blocks and grids so the grid-stride loops wrap around."""

    def __init__(self, block: int = 7, max_blocks: int = 5):
        self.block, self.max_blocks = block, max_blocks
        self.launches = []  # (name, dtype, idx32) of every launch, for the tests

    def launch(self, name, dtype, idx32, grid, args):
        self.launches.append((name, dtype, idx32))
        lib = build(launcher.source(), launcher.defines(dtype, idx32))
        cargs = [ctypes.c_ulonglong(grid), ctypes.c_ulonglong(self.block)]
        for a in args:
            cargs.append(ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else _cscalar(a))
        lib.run(name, cargs)
