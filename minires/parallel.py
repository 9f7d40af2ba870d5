"""Threads for the CPU fast paths, at one boundary: `split` cuts a kernel's batch into parts.

Kernels are written for one thread and one contiguous part of their batch (or rows); a fast
Function calls `split(fn, n)` once, and fn(start, stop) runs on each part concurrently, the calling
thread doing the first (NumPy releases the GIL inside its loops). Measured on 2 cores: copies 9.7 ->
16.7 GB/s; a 64->64 3x3 conv at 32x32 23% faster as two single-threaded-BLAS halves than as one call
with two BLAS threads.

BLAS threads: a part that calls BLAS (`blas=True`) needs the BLAS library at one thread, or each part
would start a BLAS thread per core. Holding BLAS is scoped: inside `with hold_blas():` (the Trainer,
evaluation, the examples and the benchmarks enter it) BLAS runs on one thread and BLAS parts split
over minires's threads; outside it BLAS keeps its own thread count and such work runs as one part, BLAS threading
its GEMMs itself. NOTE: restoring BLAS's threads after every kernel call (the first design) woke
OpenBLAS's idle worker, which then spins on a core for a while and slowed the next kernel by up to
1.8x; a scope around a whole training run pays that once. BLAS threads are set through threadpoolctl
(without it, BLAS parts run as one part). An OpenMP build of BLAS takes its thread count per calling
thread; NumPy's wheels use pthreads OpenBLAS, where the hold reaches the workers.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from . import tuning

_lock = threading.Lock()
_local = threading.local()  # .worker: True inside a part, so nested splits run inline
_pool = None
_num_threads = None
_blas = None  # threadpoolctl controller of the BLAS libraries, False when threadpoolctl is missing
_blas_original = None  # [(library controller, its thread count)] while BLAS is held at one thread
_holds = 0  # depth of nested hold_blas() scopes


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
        if _holds:  # inside hold_blas(): one thread needs BLAS's own threads back, several need the hold
            if n == 1:
                _restore_blas()
            elif _blas_original is None:
                _set_blas_to_one_thread()


def _blas_controller():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas")
        except ImportError:
            _blas = False
    return _blas if _blas and _blas.lib_controllers else None


@contextlib.contextmanager
def hold_blas():
    """BLAS at one thread inside the block, so BLAS work splits over minires's threads (see the module note).

    Nested scopes hold once; the outermost restores BLAS's thread counts. Without threadpoolctl (or
    a BLAS it can see) the block changes nothing and BLAS work stays in one part.
    """
    global _holds
    with _lock:
        if _holds == 0 and get_num_threads() > 1:
            _set_blas_to_one_thread()
        _holds += 1
    try:
        yield
    finally:
        with _lock:
            _holds -= 1
            if _holds == 0:
                _restore_blas()


def _set_blas_to_one_thread() -> None:
    """Set every BLAS library to one thread; on failure put back what was set and re-raise (call with _lock)."""
    global _blas_original
    blas = _blas_controller()
    if blas is None:
        return
    done = []
    try:
        for lib in blas.lib_controllers:
            n = lib.num_threads
            lib.set_num_threads(1)
            done.append((lib, n))
    except BaseException:
        for lib, n in done:
            lib.set_num_threads(n)
        raise
    _blas_original = done  # published only once every library is held, so blas_held() never lies


def _restore_blas() -> None:
    global _blas_original
    original, _blas_original = _blas_original, None
    for lib, n in original or ():
        lib.set_num_threads(n)


def blas_held() -> bool:
    """Whether BLAS is held at one thread now (inside hold_blas, with a BLAS threadpoolctl can set)."""
    return _blas_original is not None


def in_part() -> bool:
    """Whether the calling thread runs a part of a split (a nested split then runs inline)."""
    return getattr(_local, "worker", False)


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


def split(fn, n: int, *, item_size: int = 1, blas: bool = False, reduce=None):
    """[fn(start, stop) for each part of range(n)], the parts run concurrently, one per thread.

    fn must write disjoint outputs per part. `item_size`: array elements one step of range(n)
    touches; parts stay above tuning.MIN_PART_ELEMENTS. `blas=True`: fn calls BLAS, so the work
    splits only while BLAS is held (hold_blas). Inside a part, split runs fn inline. `reduce`
    (e.g. sum) combines the parts' results into one value.
    """
    k = min(get_num_threads(), n, (n * item_size) // tuning.MIN_PART_ELEMENTS)
    if k <= 1 or in_part() or (blas and not blas_held()):
        results = [fn(0, n)]
    else:
        spans = parts(n, k)
        with _lock:  # set_num_threads cannot shut the pool down between fetching it and submitting
            pool = _executor_locked(get_num_threads())
            futures = [pool.submit(_run_part, fn, a, b) for a, b in spans[1:]]
        try:
            first = _run_part(fn, *spans[0])
        finally:
            wait(futures)  # never leave a part running past this call, even when one failed
        results = [first] + [f.result() for f in futures]  # result() re-raises a part's exception
    return results if reduce is None else reduce(results)


def split_rows(fn, a, *, reduce=None):
    """split over blocks [start, stop) of array a's leading axis (a batch, or rows of a view)."""
    n = a.shape[0]
    return split(fn, n, item_size=a.size // max(n, 1), reduce=reduce)
