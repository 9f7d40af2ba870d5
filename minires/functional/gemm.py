"""The matrix product under the CPU kernels: BLAS, split over cores by rows, float16 multiplied in float32.

NOTE: NumPy has no float16 GEMM; its generic loop runs ~100x slower than float32 BLAS (a ResNet-20
step under autocast took 125 s). Multiplying float16 operands in float32 and rounding the product
to float16 is also what GPU tensor cores do (float16 inputs, float32 accumulation), so the CPU
reproduces the GPU's mixed-precision numerics instead of a slower, less accurate float16 sum.
CuPy arrays go straight to cuBLAS.

NOTE: the kernels split their batch over threads, one part per core, with BLAS held at one thread
(minires.parallel). A call that gets one part (a batch of one image) would then run its GEMMs on
one core, so a 2-D product called outside a part splits its rows over the cores itself; inside a
part parallel_for runs inline and nothing nests.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..parallel import parallel_for

# A row block is worth a thread from about MIN_PART_ELEMENTS * 32 multiply-adds (tens of microseconds).
_MACS_PER_ELEMENT = 32


def _product(a, b, out):
    if a.dtype == np.float16 or b.dtype == np.float16:
        product = np.matmul(a.astype(np.float32), b.astype(np.float32))
        if out is None:
            return product.astype(np.result_type(a.dtype, b.dtype))
        out[...] = product
        return out
    return np.matmul(a, b, out=out)


def matmul(a, b, out=None):
    """a @ b (broadcast over leading dims like numpy.matmul), into `out` if given."""
    xp = get_array_module(a)
    if xp is not np:
        return xp.matmul(a, b, out=out)
    if a.ndim != 2 or b.ndim != 2:
        return _product(a, b, out)
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a.dtype, b.dtype))
    parallel_for(lambda r0, r1: _product(a[r0:r1], b, out[r0:r1]), a.shape[0], blas=True,
                 row_size=max(1, a.shape[1] * b.shape[1] // _MACS_PER_ELEMENT))
    return out
