"""The matrix product under the CPU kernels: BLAS, split over cores by rows, float16 multiplied in float32.

NOTE: NumPy has no float16 GEMM; its generic loop runs ~100x slower than float32 BLAS (a ResNet-20
step under autocast took 125 s). Multiplying float16 operands in float32 and rounding the product
to float16 is also what GPU tensor cores do (float16 inputs, float32 accumulation), so the CPU
reproduces the GPU's mixed-precision numerics instead of a slower, less accurate float16 sum.
CuPy arrays go straight to cuBLAS.

NOTE: the kernels split their batch over threads, one part per core, while BLAS is held at one
thread (minires.parallel.hold_blas). A call that gets one part (a batch of one image) would then run
its GEMMs on one core, so a 2-D product called outside a part splits its rows over the cores itself;
inside a part parallel.split runs inline and nothing nests.
"""
from __future__ import annotations

import numpy as np

from ...backend import get_array_module
from ... import parallel, tuning


def _product(a, b, out, dtype):
    """a @ b into `out` (None: a new array of `dtype`); float16 operands are multiplied in float32."""
    if np.float16 in (a.dtype, b.dtype):
        a, b = a.astype(np.float32), b.astype(np.float32)
    if out is None:
        return np.matmul(a, b).astype(dtype, copy=False)
    if out.dtype == np.result_type(a.dtype, b.dtype):
        return np.matmul(a, b, out=out)
    out[...] = np.matmul(a, b)  # the float32 product of float16 operands, rounded once
    return out


def matmul(a, b, out=None):
    """a @ b (broadcast over leading dims like numpy.matmul), into `out` if given."""
    xp = get_array_module(a)
    if xp is not np:
        return xp.matmul(a, b, out=out)
    dtype = np.result_type(a.dtype, b.dtype)
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] == b.shape[0] == 1:  # one group: a 2-D product, split below
        if out is None:
            out = np.empty((1, a.shape[1], b.shape[2]), dtype=dtype)
        matmul(a[0], b[0], out=out[0])
        return out
    if a.ndim != 2 or b.ndim != 2 or (out is not None and (np.may_share_memory(out, a) or
                                                           np.may_share_memory(out, b))):
        return _product(a, b, out, dtype)  # NOTE: numpy buffers an `out` that overlaps an input; parts would not
    if np.float16 in (a.dtype, b.dtype):  # converted once here rather than once per part
        a, b = a.astype(np.float32), b.astype(np.float32)
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=dtype)
    parallel.split(lambda r0, r1: _product(a[r0:r1], b, out[r0:r1], dtype), a.shape[0], blas=True,
                   item_size=max(1, a.shape[1] * b.shape[1] // tuning.MACS_PER_ELEMENT))
    return out
