"""minires.parallel: how CPU work is cut into parts, run on threads, and how BLAS threads are held."""
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minires import parallel


@pytest.fixture
def threads(monkeypatch):
    """Set the kernel thread count for one test, splitting even tiny work; restored afterwards."""
    monkeypatch.setattr(parallel, "MIN_PART_ELEMENTS", 1)
    previous = parallel.get_num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(previous)


@given(n=st.integers(0, 200), k=st.integers(1, 9))
def test_parts_cover_the_range_in_order_without_gaps(n, k):
    spans = parallel.parts(n, k)
    assert len(spans) == max(1, min(k, n))
    covered = [i for a, b in spans for i in range(a, b)]
    assert covered == list(range(n))
    if n:
        sizes = [b - a for a, b in spans]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_parts_run_on_distinct_threads_and_come_back_in_order(threads):
    threads(3)
    barrier = threading.Barrier(3, timeout=10)  # deadlocks (times out) unless 3 parts run at once

    def part(a, b):
        barrier.wait()
        return a, b, threading.get_ident()

    out = parallel.parallel_for(part, 9)
    assert [(a, b) for a, b, _ in out] == [(0, 3), (3, 6), (6, 9)]
    assert len({t for *_, t in out}) == 3
    assert out[0][2] == threading.get_ident()  # the caller runs the first part itself


def test_small_work_is_not_split(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PART_ELEMENTS", 1000)
    assert parallel.parallel_for(lambda a, b: (a, b), 10, row_size=10) == [(0, 10)]
    assert len(parallel.parallel_for(lambda a, b: (a, b), 10, row_size=1000)) == min(10, parallel.get_num_threads())


def test_nested_calls_run_inline(threads):
    threads(2)
    inner = parallel.parallel_for(lambda a, b: parallel.parallel_for(lambda c, d: (c, d), b - a), 4)
    assert inner == [[(0, 2)], [(0, 2)]]


def test_an_exception_in_a_worker_part_reaches_the_caller_after_all_parts_end(threads):
    threads(2)
    finished = []

    def part(a, b):
        if a:
            raise ValueError("part two failed")
        finished.append(a)
        return a

    with pytest.raises(ValueError, match="part two failed"):
        parallel.parallel_for(part, 2)
    assert finished == [0]


def test_one_thread_runs_everything_in_the_caller(threads):
    threads(1)
    assert parallel.parallel_for(lambda a, b: threading.get_ident(), 8) == [threading.get_ident()]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        parallel.set_num_threads(bad)


@pytest.mark.parametrize("value", ["0", "two", "-3"])
def test_bad_environment_thread_count_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("MINIRES_NUM_THREADS", value)
    with pytest.raises(ValueError, match="MINIRES_NUM_THREADS"):
        parallel._default_threads()


def test_environment_thread_count_is_used(monkeypatch):
    monkeypatch.setenv("MINIRES_NUM_THREADS", "5")
    assert parallel._default_threads() == 5


def test_blas_is_held_at_one_thread_in_blas_parts_and_given_back_at_one_thread(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    threads(2)
    a = np.ones((64, 64))
    parallel.parallel_for(lambda i, j: a @ a, 2, blas=True)
    blas = threadpoolctl.threadpool_info()
    blas = [lib for lib in blas if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)
    original = [t for _, t in parallel._blas_original]
    threads(1)
    now = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert now == original


def test_cupy_like_arrays_run_as_one_part():
    class FakeXp:
        __name__ = "cupy"
    assert parallel.array_parts(FakeXp, lambda a, b: (a, b), 100, row_size=10**6) == [(0, 100)]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_working_pool(threads):
    import os
    threads(2)
    parallel.parallel_for(lambda a, b: None, 2)  # the parent's pool now has a thread
    pid = os.fork()
    if pid == 0:  # child: would hang on the parent's (absent) worker thread without the fork hook
        ok = parallel.parallel_for(lambda a, b: (a, b), 2) == [(0, 1), (1, 2)]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000", 2),
                                        ("50000 100000", 1), ("garbage", None)])
def test_a_cgroup_cpu_quota_caps_the_default_thread_count(tmp_path, text, cpus):
    f = tmp_path / "cpu.max"
    f.write_text(text)
    assert parallel._cgroup_cpu_quota(str(f)) == cpus
    assert parallel._cgroup_cpu_quota(str(tmp_path / "absent")) is None


def test_no_blas_library_found_means_blas_parts_run_inline(threads, monkeypatch):
    class NoLibs:
        lib_controllers = []
    threads(2)
    monkeypatch.setattr(parallel, "_blas", NoLibs())
    monkeypatch.setattr(parallel, "_blas_original", None)
    assert parallel.parallel_for(lambda a, b: (a, b), 4, blas=True) == [(0, 4)]
    assert len(parallel.parallel_for(lambda a, b: (a, b), 4)) == 2  # element-wise parts still split


def test_gemm_splits_its_rows_outside_a_part_and_runs_whole_inside_one(threads, monkeypatch):
    from minires.kernels.cpu import gemm
    threads(3)
    monkeypatch.setattr(parallel, "_hold_blas", lambda: True)  # split even where threadpoolctl is missing
    calls = []
    product = gemm._product

    def spy(a, b, out, dtype):
        calls.append((a.shape[0], threading.get_ident()))
        return product(a, b, out, dtype)
    monkeypatch.setattr(gemm, "_product", spy)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 4))
    reference = (a[:, :, None] * b[None, :, :]).sum(axis=1)  # sum of products, no BLAS
    np.testing.assert_allclose(gemm.matmul(a, b), reference, rtol=1e-12)
    assert sorted(rows for rows, _ in calls) == [2, 2, 3]  # a batch-of-one conv's GEMM still uses every core
    assert len({thread for _, thread in calls}) > 1
    calls.clear()
    out3 = gemm.matmul(a[None], b[None])  # a one-group conv's (1, M, K) @ (1, K, N) splits the same way
    np.testing.assert_allclose(out3[0], reference, rtol=1e-12)
    assert out3.shape == (1, 7, 4) and sorted(rows for rows, _ in calls) == [2, 2, 3]
    sq = rng.standard_normal((6, 6))
    expected = (sq[:, :, None] * sq[None, :, :]).sum(axis=1)
    inplace = sq.copy()
    calls.clear()
    gemm.matmul(sq, inplace, out=inplace)  # out overlapping an operand: one whole product, as numpy buffers it
    np.testing.assert_allclose(inplace, expected, rtol=1e-12)
    assert [rows for rows, _ in calls] == [6]  # split parts would overwrite rows other parts still read
    calls.clear()
    parallel.parallel_for(lambda r0, r1: gemm.matmul(a, b), 2)  # inside a part: no nested split
    assert [rows for rows, _ in calls] == [7, 7]
    a16, b16 = a.astype(np.float16), b.astype(np.float16)
    out16 = gemm.matmul(a16, b16)  # float16 operands multiply in float32, the product rounds to float16
    assert out16.dtype == np.float16
    ref16 = (a16.astype(np.float64)[:, :, None] * b16.astype(np.float64)[None]).sum(axis=1)
    np.testing.assert_allclose(out16.astype(np.float64), ref16, rtol=2e-3, atol=2e-3)
