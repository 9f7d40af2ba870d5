"""Threads for the CPU fast paths, at one boundary: `split` cuts a kernel's batch into parts.

Kernels are written for one thread and one contiguous part of their batch (or rows); a fast
Function calls `split(fn, n)` once, and fn(start, stop) runs on each part concurrently, the calling
thread doing the first (NumPy releases the GIL inside its loops). Measured on 2 cores: copies 9.7 ->
16.7 GB/s; a 64->64 3x3 conv at 32x32 23% faster as two single-threaded-BLAS halves than as one call
with two BLAS threads.

BLAS threads: parts that call BLAS (`blas=True`) need the BLAS library at one thread, or each part
would start a BLAS thread per core. Such a split holds BLAS at one thread itself while its parts run
and gives BLAS its thread count back after: a hand-written loop gets the Trainer's speed with no
call, and the user's own NumPy code between minires ops keeps BLAS's threads. NOTE: a hold and its
release cost 3-8 us (the cached threadpoolctl controller, two library calls); a training step has
6 such splits (a small CNN, 117 ms) to 42 (ResNet-20 at batch 128, 800 ms). Measured with
benchmarks/bench_three_ways.py on 2 cores, OpenBLAS 0.3.31: a loop without hold_blas() ran at 0.95
of one with it (best epochs; within the noise), where before this per-split hold it ran at 0.85
quiet and 0.54 beside a process spinning on one core (OpenBLAS's threads and minires's competing).
An earlier design that restored BLAS after every call saw OpenBLAS's woken worker slow the next
kernel by up to 1.8x; this OpenBLAS showed no such cost. `with hold_blas():` holds BLAS over a
whole block (the Trainer, evaluation and the benchmarks enter it): it saves the per-call set and
restore and also puts BLAS calls outside the splits (a Tensor `@`, your own np.matmul) at one
thread. Holds nest and count over threads: BLAS gets its threads back when the last one ends.
BLAS threads are set through threadpoolctl; without it (or a BLAS it can see) BLAS parts split only
when the environment already runs BLAS on one thread (OPENBLAS_NUM_THREADS=1, ...), else they run
as one part, BLAS threading its GEMMs itself. An OpenMP build of BLAS takes its thread count per
calling thread; NumPy's wheels use pthreads OpenBLAS, where the hold reaches the workers.
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
_holds = 0  # hold_blas() scopes and BLAS splits running now, over all threads
# Variables that set BLAS's thread count when it loads: OpenBLAS's, MKL's, then the OpenMP fallback.
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


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


def _env_runs_blas_on_one_thread() -> bool:
    """Whether the environment BLAS loaded under runs it on one thread: each of _BLAS_ENV that is set is 1."""
    values = [os.environ.get(v, "").strip() for v in _BLAS_ENV]
    return any(values) and all(v in ("", "1") for v in values)


def _blas_splits() -> bool:
    """Whether BLAS work may split over minires's threads: BLAS can be held, or already runs one thread."""
    return _blas_controller() is not None or _env_runs_blas_on_one_thread()


def _hold() -> None:
    """Take one hold (call with _lock): the first sets BLAS to one thread."""
    global _holds
    if _holds == 0 and get_num_threads() > 1:
        _set_blas_to_one_thread()
    _holds += 1  # not reached when setting failed: nothing is held then


def _release() -> None:
    """Give one hold back (call with _lock): the last restores BLAS's thread counts."""
    global _holds
    _holds -= 1
    if _holds == 0:
        _restore_blas()


@contextlib.contextmanager
def hold_blas():
    """BLAS at one thread for the whole block, BLAS calls outside minires's splits included (see the module note).

    BLAS splits hold BLAS themselves; the block saves their set/restore per call and keeps BLAS
    at one thread between them. Nested scopes hold once; the last hold to end restores BLAS's
    thread counts. Without threadpoolctl (or a BLAS it can see) the block changes nothing.
    """
    with _lock:
        _hold()
    try:
        yield
    finally:
        with _lock:
            _release()


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
    """Whether BLAS is held at one thread now (inside hold_blas or a BLAS split, with a BLAS threadpoolctl can set)."""
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
    touches; parts stay above tuning.MIN_PART_ELEMENTS. `blas=True`: fn calls BLAS, so BLAS is
    held at one thread while the parts run (one part, BLAS threading itself, where it cannot be).
    Inside a part, split runs fn inline. `reduce` (e.g. sum) combines the parts' results into one value.
    """
    k = min(get_num_threads(), n, (n * item_size) // tuning.MIN_PART_ELEMENTS)
    if k <= 1 or in_part() or (blas and not _blas_splits()):
        results = [fn(0, n)]
    elif blas:
        with _lock:  # NOTE: a hold of this call's own, even inside another's: that one may end first
            _hold()
        try:
            results = _run_parts(fn, parts(n, k))
        finally:
            with _lock:
                _release()
    else:
        results = _run_parts(fn, parts(n, k))
    return results if reduce is None else reduce(results)


def _run_parts(fn, spans):
    """[fn(a, b) for (a, b) in spans], the first in the caller, the others on the pool."""
    with _lock:  # set_num_threads cannot shut the pool down between fetching it and submitting
        pool = _executor_locked(get_num_threads())
        futures = [pool.submit(_run_part, fn, a, b) for a, b in spans[1:]]
    try:
        first = _run_part(fn, *spans[0])
    finally:
        wait(futures)  # never leave a part running past this call, even when one failed
    return [first] + [f.result() for f in futures]  # result() re-raises a part's exception


def split_rows(fn, a, *, reduce=None):
    """split over blocks [start, stop) of array a's leading axis (a batch, or rows of a view)."""
    n = a.shape[0]
    return split(fn, n, item_size=a.size // max(n, 1), reduce=reduce)
