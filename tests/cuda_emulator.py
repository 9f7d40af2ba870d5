"""Runs minires/cuda/kernels.cu on the CPU: a C++ build in which each launch loops over every
(block, thread) in turn. Valid because the kernels follow the rules stated in kernels.cu (one writer
per output, no shared memory, no __syncthreads); it checks their index arithmetic and math, not
CUDA-specific behaviour (memory coalescing, occupancy, float rounding of fused multiply-adds)."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from minires import cuda

PRELUDE = r"""
#include <cmath>
using std::exp; using std::log;
struct emu_dim3 { unsigned long long x; };
static emu_dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__ static
"""

_CTYPES = {"idx_t": ctypes.c_longlong, "int": ctypes.c_int}


def compiler():
    return shutil.which("g++") or shutil.which("c++")


def _wrappers() -> str:
    out = []
    for name, params in cuda.signatures().items():
        decl = ", ".join(f"{'const ' if False else ''}{t}{' *' if p else ' '}{n}" for p, t, n in params)
        call = ", ".join(n for _, _, n in params)
        out.append(f'extern "C" void emu_{name}(unsigned long long grid, unsigned long long block, {decl}) {{\n'
                   f"  gridDim.x = grid; blockDim.x = block;\n"
                   f"  for (unsigned long long b = 0; b < grid; ++b) for (unsigned long long t = 0; t < block; ++t)\n"
                   f"    {{ blockIdx.x = b; threadIdx.x = t; {name}({call}); }}\n}}\n")
    return "\n".join(out)


class EmulatedLauncher(cuda.Launcher):
    """A Launcher over NumPy arrays; small blocks and grids so the grid-stride loops wrap around."""

    def __init__(self, block: int = 7, max_blocks: int = 5):
        self.block, self.max_blocks = block, max_blocks
        self._libs = {}
        self._dir = tempfile.mkdtemp(prefix="minires-cuda-emu-")

    def _lib(self, dtype):
        if dtype not in self._libs:
            ctype = "float" if dtype == np.float32 else "double"
            src = Path(self._dir) / f"k_{ctype}.cpp"
            so = Path(self._dir) / f"k_{ctype}.so"
            src.write_text(PRELUDE + f"#define scalar_t {ctype}\n" + cuda.source() + "\n" + _wrappers())
            subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-o", str(so), str(src)], check=True,
                           capture_output=True, text=True)
            self._libs[dtype] = ctypes.CDLL(str(so))
        return self._libs[dtype]

    def launch(self, name, dtype, grid, args):
        fn = getattr(self._lib(dtype), f"emu_{name}")
        cargs = [ctypes.c_ulonglong(grid), ctypes.c_ulonglong(self.block)]
        for (ptr, ctype, _), a in zip(cuda.signatures()[name], args):
            if ptr:
                cargs.append(ctypes.c_void_p(a.ctypes.data))
            elif ctype == "scalar_t":
                cargs.append(ctypes.c_float(a) if dtype == np.float32 else ctypes.c_double(a))
            else:
                cargs.append(_CTYPES[ctype](int(a)))
        fn(*cargs)
