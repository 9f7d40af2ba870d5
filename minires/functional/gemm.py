"""The matrix product under the CPU kernels: BLAS, with float16 operands multiplied in float32.

NOTE: NumPy has no float16 GEMM; its generic loop runs ~100x slower than float32 BLAS (a ResNet-20
step under autocast took 125 s). Multiplying float16 operands in float32 and rounding the product
to float16 is also what GPU tensor cores do (float16 inputs, float32 accumulation), so the CPU
reproduces the GPU's mixed-precision numerics instead of a slower, less accurate float16 sum.
CuPy arrays go straight to cuBLAS.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module


def matmul(a, b, out=None):
    """a @ b (broadcast over leading dims like numpy.matmul), into `out` if given."""
    xp = get_array_module(a)
    if xp is np and (a.dtype == np.float16 or b.dtype == np.float16):
        product = np.matmul(a.astype(np.float32), b.astype(np.float32))
        if out is None:
            return product.astype(np.result_type(a.dtype, b.dtype))
        out[...] = product
        return out
    return xp.matmul(a, b, out=out)
