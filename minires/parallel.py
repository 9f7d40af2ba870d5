"""Spreading CPU array work over cores with Python threads: NumPy releases the GIL inside its loops.

NumPy's element-wise loops and copies run on one core; only its BLAS GEMMs use several. Kernels
therefore split their batch into one contiguous part per thread (`parallel_for`), the calling
thread doing the first. Measured on 2 cores: copies 9.7 -> 16.7 GB/s; a 64->64 3x3 conv at 32x32
23% faster as two single-threaded-BLAS halves than as one call with two BLAS threads.

BLAS threads: parts that call BLAS (`blas=True`) need the BLAS library (OpenBLAS, MKL, ... through
threadpoolctl when installed) at one thread, or each part would start a BLAS thread per core. The
first such call sets it to one thread FOR THE PROCESS and leaves it there: restoring it after each
call woke OpenBLAS's idle worker, which then spins on a core for a while and slowed the next
parallel kernel by up to 1.8x. So a user's own large matmuls run on one core once minires kernels
have run with threads > 1; `set_num_threads(1)` gives BLAS its original thread count back.
Without threadpoolctl the BLAS thread count cannot be set, and BLAS parts run in one thread. An
OpenMP build of BLAS takes its thread count per calling thread, so the hold may not reach the
workers there; NumPy's wheels use pthreads OpenBLAS, where it does. A call that gets a single part
(a batch of one image, say) still uses every core for its conv GEMMs: minires.functional.gemm splits
a product's rows when it runs outside a part (a one-row product stays whole).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

_lock = threading.Lock()
_local = threading.local()  # .worker: True inside a part, so nested parallel_for runs inline
_pool = None
_num_threads = None
_blas = None  # threadpoolctl controller of the BLAS libraries, False when threadpoolctl is missing
_blas_original = None  # [(library controller, its thread count)] while minires holds BLAS at one thread

# Parts smaller than this many array elements are not worth a thread hand-off (tens of microseconds).
MIN_PART_ELEMENTS = 2**15


def _forget_pool_in_child() -> None:
    global _pool, _lock
    _pool, _lock = None, threading.Lock()  # a forked child has none of the parent's threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _default_threads() -> int:
    env = os.environ.get("MINIRES_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"MINIRES_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"MINIRES_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _cgroup_cpu_quota() or cores))


def _cgroup_cpu_quota(path: str = "/sys/fs/cgroup/cpu.max"):
    """The CPUs a cgroup-v2 quota allows (a container run with --cpus=2, say), rounded up; None if unlimited."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


def get_num_threads() -> int:
    """Threads that CPU kernels split their work over (MINIRES_NUM_THREADS, else the usable cores)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n: int) -> None:
    """Set how many threads CPU kernels use; 1 runs every kernel in the calling thread."""
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    with _lock:
        if _pool is not None and n != _num_threads:
            _pool.shutdown(wait=True)
            _pool = None
        _num_threads = n
        if n == 1:
            _release_blas()


def _hold_blas() -> bool:
    """Set BLAS to one thread for the process (see the module note); False if that is impossible."""
    global _blas, _blas_original
    if _blas_original is not None:
        return True
    with _lock:
        if _blas is None:
            try:
                from threadpoolctl import ThreadpoolController
                _blas = ThreadpoolController().select(user_api="blas")
            except ImportError:
                _blas = False
        if _blas is False or not _blas.lib_controllers:  # no BLAS found: its threads cannot be held
            return False
        if _blas_original is None:
            original = [(lib, lib.num_threads) for lib in _blas.lib_controllers]
            for lib, _ in original:
                lib.set_num_threads(1)
            _blas_original = original
    return True


def _release_blas() -> None:
    global _blas_original
    for lib, threads in _blas_original or ():
        lib.set_num_threads(threads)
    _blas_original = None


def _executor_locked(n: int) -> ThreadPoolExecutor:
    """The pool of n - 1 workers (the caller runs a part too); call with _lock held."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="minires")
    return _pool


def parts(n: int, k: int) -> list[tuple[int, int]]:
    """range(n) cut into at most k contiguous, near-equal, non-empty (start, stop) parts."""
    k = max(1, min(k, n))
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


def _run_part(fn, start, stop):
    _local.worker = True
    try:
        return fn(start, stop)
    finally:
        _local.worker = False


def parallel_for(fn, n: int, blas: bool = False, row_size: int = 1) -> list:
    """[fn(start, stop) for each part of range(n)], the parts run concurrently, one per thread.

    fn must write disjoint outputs per part. `row_size` is the number of array elements one step
    of range(n) touches: parts are kept above MIN_PART_ELEMENTS. `blas=True` says fn calls BLAS
    (see the module note). Inside a part, parallel_for runs fn inline.
    """
    k = min(get_num_threads(), n, (n * row_size) // MIN_PART_ELEMENTS)
    if k <= 1 or getattr(_local, "worker", False) or (blas and not _hold_blas()):
        return [fn(0, n)]
    spans = parts(n, k)
    with _lock:  # set_num_threads cannot shut the pool down between fetching it and submitting
        pool = _executor_locked(get_num_threads())
        futures = [pool.submit(_run_part, fn, a, b) for a, b in spans[1:]]
    try:
        first = _run_part(fn, *spans[0])
    finally:
        wait(futures)  # never leave a part running past this call, even when one failed
    return [first] + [f.result() for f in futures]  # result() re-raises a part's exception


def array_parts(xp, fn, n: int, row_size: int = 1, blas: bool = False) -> list:
    """parallel_for for NumPy arrays (xp is numpy); [fn(0, n)] for CuPy, whose kernels run on the GPU."""
    if xp is np:
        return parallel_for(fn, n, blas=blas, row_size=row_size)
    return [fn(0, n)]


def batch_parts(xp, x, fn) -> None:
    """fn(index) on blocks x[index] along the leading axis, one per CPU thread; fn(...) for 0-d x."""
    if x.ndim == 0:
        fn(...)
        return
    n = x.shape[0]
    array_parts(xp, lambda a, b: fn(slice(a, b)), n, row_size=x.size // max(n, 1))
