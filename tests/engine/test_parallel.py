"""minires.parallel: how `split` cuts CPU work into parts and runs them on threads, and how the scoped
`hold_blas()` holds BLAS at one thread."""
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minires as mr
from minires import dispatch, parallel, tuning
from minires.functional import conv2d
from minires.kernels.cpu import gemm


@pytest.fixture
def threads(monkeypatch):
    """Set the kernel thread count for one test, splitting even tiny work; restored afterwards."""
    monkeypatch.setattr(tuning, "MIN_PART_ELEMENTS", 1)
    previous = parallel.get_num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(previous)


class FakeLibrary:
    """One BLAS library as threadpoolctl shows it: a thread count, and every change made to it."""

    def __init__(self, num_threads):
        self.num_threads, self.changes = num_threads, []

    def set_num_threads(self, n):
        self.changes.append(n)
        self.num_threads = n


@pytest.fixture
def fake_blas(monkeypatch):
    """A BLAS at 4 threads that hold_blas controls, whether or not threadpoolctl is installed."""
    assert not parallel.blas_held()  # no scope left open by an earlier test
    lib = FakeLibrary(4)
    monkeypatch.setattr(parallel, "_blas", type("Controller", (), {"lib_controllers": [lib]})())
    return lib


@given(n=st.integers(0, 200), k=st.integers(1, 9))
def test_parts_cover_the_range_in_order_without_gaps(n, k):
    spans = parallel.parts(n, k)
    assert len(spans) == max(1, min(k, n))
    covered = [i for a, b in spans for i in range(a, b)]
    assert covered == list(range(n))
    if n:
        sizes = [b - a for a, b in spans]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


# ---- split ----------------------------------------------------------------------------------------
def test_parts_run_on_distinct_threads_and_come_back_in_order(threads):
    threads(3)
    barrier = threading.Barrier(3, timeout=10)  # deadlocks (times out) unless 3 parts run at once

    def part(a, b):
        barrier.wait()
        return a, b, threading.get_ident()

    out = parallel.split(part, 9)
    assert [(a, b) for a, b, _ in out] == [(0, 3), (3, 6), (6, 9)]
    assert len({t for *_, t in out}) == 3
    assert out[0][2] == threading.get_ident()  # the caller runs the first part itself


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300))
def test_reduce_combines_the_parts_into_the_whole(n):
    previous = parallel.get_num_threads()
    parallel.set_num_threads(3)
    try:
        total = parallel.split(lambda a, b: sum(range(a, b)), n, item_size=tuning.MIN_PART_ELEMENTS, reduce=sum)
    finally:
        parallel.set_num_threads(previous)
    assert total == n * (n - 1) // 2  # closed form of 0 + 1 + ... + n-1


def test_parts_written_into_one_output_fill_it(threads):
    threads(2)
    x = np.arange(10.0)
    out = np.empty_like(x)
    parts = parallel.split(lambda a, b: np.multiply(x[a:b], 2, out=out[a:b]).size, 10)
    assert parts == [5, 5]
    np.testing.assert_array_equal(out, [2 * i for i in range(10)])


def test_item_size_keeps_parts_above_the_minimum(monkeypatch):
    monkeypatch.setattr(tuning, "MIN_PART_ELEMENTS", 1000)
    previous = parallel.get_num_threads()
    parallel.set_num_threads(4)
    try:
        assert parallel.split(lambda a, b: (a, b), 10, item_size=10) == [(0, 10)]  # 100 elements: one part
        assert parallel.split(lambda a, b: (a, b), 10, item_size=250) == [(0, 5), (5, 10)]  # 2500: two parts
        assert len(parallel.split(lambda a, b: (a, b), 10, item_size=1000)) == 4  # as many as threads
    finally:
        parallel.set_num_threads(previous)


def test_nested_splits_run_inline(threads):
    threads(2)
    inner = parallel.split(lambda a, b: (parallel.in_part(), parallel.split(lambda c, d: (c, d), b - a)), 4)
    assert inner == [(True, [(0, 2)]), (True, [(0, 2)])]
    assert not parallel.in_part()  # the caller's flag is cleared after its part


def test_an_exception_in_a_worker_part_reaches_the_caller_after_all_parts_end(threads):
    threads(2)
    finished = []

    def part(a, b):
        if a:
            raise ValueError("part two failed")
        finished.append(a)
        return a

    with pytest.raises(ValueError, match="part two failed"):
        parallel.split(part, 2)
    assert finished == [0]


def test_an_exception_in_the_callers_part_waits_for_the_other_parts(threads):
    threads(2)
    finished = []

    def part(a, b):
        if a == 0:
            raise KeyError("part one failed")
        time.sleep(0.05)
        finished.append(a)

    with pytest.raises(KeyError, match="part one failed"):
        parallel.split(part, 2)
    assert finished == [1]  # no part is left running past the call


def test_one_thread_runs_everything_in_the_caller(threads):
    threads(1)
    assert parallel.split(lambda a, b: (a, b, threading.get_ident()), 8) == [(0, 8, threading.get_ident())]


def test_an_empty_range_is_one_empty_part(threads):
    threads(3)
    assert parallel.split(lambda a, b: (a, b), 0) == [(0, 0)]


# ---- holding BLAS -----------------------------------------------------------------------------------
def test_a_blas_split_holds_blas_while_its_parts_run_and_gives_it_back(threads, fake_blas):
    threads(2)
    seen = parallel.split(lambda a, b: (a, b, fake_blas.num_threads, parallel.blas_held()), 4, blas=True)
    assert seen == [(0, 2, 1, True), (2, 4, 1, True)]  # no explicit hold_blas(): the split holds it itself
    assert fake_blas.num_threads == 4 and fake_blas.changes == [1, 4] and not parallel.blas_held()
    assert len(parallel.split(lambda a, b: (a, b), 4)) == 2 and fake_blas.changes == [1, 4]  # element-wise: no hold
    fake_blas.set_num_threads(3)  # the user's own setting between minires calls is the one given back
    parallel.split(lambda a, b: None, 4, blas=True)
    assert fake_blas.num_threads == 3 and fake_blas.changes == [1, 4, 3, 1, 3]


def test_inside_hold_blas_splits_leave_blas_alone_nested_or_not(threads, fake_blas):
    threads(2)
    with parallel.hold_blas():
        assert parallel.split(lambda a, b: fake_blas.num_threads, 4, blas=True) == [1, 1]
        with parallel.hold_blas():
            parallel.split(lambda a, b: None, 4, blas=True)
        assert parallel.blas_held() and fake_blas.changes == [1]  # one set for the whole block, nothing per call
    assert fake_blas.changes == [1, 4] and not parallel.blas_held()


def test_blas_comes_back_only_when_the_last_of_two_threads_splits_ends(threads, fake_blas):
    threads(3)
    inside, go, seen = threading.Event(), threading.Event(), []
    other = threading.Thread(target=parallel.split, args=(lambda a, b: a or (inside.set(), go.wait(10)), 2),
                             kwargs={"blas": True})  # its own part waits for `go`
    other.start()
    assert inside.wait(10)

    def part(a, b):  # started inside the other thread's split, which ends while this one still runs
        if a == 0:
            go.set()
            other.join(10)
            seen.append(fake_blas.num_threads)
    parallel.split(part, 2, blas=True)
    assert seen == [1] and not other.is_alive()  # still held by this split's own hold
    assert fake_blas.changes == [1, 4] and not parallel.blas_held()


def test_a_user_loop_runs_a_real_conv_with_blas_held_and_gets_its_setting_back(threads, monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    threads(2)
    np.ones((8, 8)) @ np.ones((8, 8))  # BLAS is loaded
    blas = parallel._blas_controller()
    if blas is None:
        pytest.skip("threadpoolctl sees no BLAS library")
    seen, product = [], gemm._product
    monkeypatch.setattr(gemm, "_product", lambda *a: (seen.append([lib.num_threads for lib in blas.lib_controllers]),
                                                      product(*a))[1])
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"), dispatch.use_impl("fast"):  # the user's BLAS
        x = mr.randn(4, 3, 6, 6, requires_grad=True)                                  # setting; the CPU fast path
        conv2d(x, mr.randn(5, 3, 3, 3)).sum().backward()  # forward and backward, no hold_blas()
        after = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert len(seen) >= 4 and all(n == [1] * len(blas.lib_controllers) for n in seen)  # every GEMM in a held part
    assert after == [2] * len(blas.lib_controllers) and not parallel.blas_held()


def test_without_a_blas_to_hold_blas_work_splits_only_if_the_environment_runs_it_on_one_thread(threads, monkeypatch):
    threads(2)
    monkeypatch.setattr(parallel, "_blas", False)  # threadpoolctl missing
    for name in parallel._BLAS_ENV:
        monkeypatch.delenv(name, raising=False)
    assert parallel.split(lambda a, b: (a, b), 4, blas=True) == [(0, 4)]  # BLAS threads its own GEMMs
    assert len(parallel.split(lambda a, b: (a, b), 4)) == 2
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert parallel.split(lambda a, b: (a, b), 4, blas=True) == [(0, 2), (2, 4)]
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # could give BLAS 4 threads: each part would start them
    assert parallel.split(lambda a, b: (a, b), 4, blas=True) == [(0, 4)]
    assert not parallel.blas_held()


def test_blas_threads_come_back_to_the_original_after_the_block(threads, fake_blas):
    threads(2)
    with parallel.hold_blas():
        assert fake_blas.num_threads == 1
    assert fake_blas.num_threads == 4 and fake_blas.changes == [1, 4] and not parallel.blas_held()


def test_nested_holds_hold_once_and_restore_once(threads, fake_blas):
    threads(2)
    with parallel.hold_blas():
        with parallel.hold_blas():
            assert parallel.blas_held()
        assert parallel.blas_held() and fake_blas.num_threads == 1  # the inner block left it held
    assert fake_blas.changes == [1, 4] and not parallel.blas_held()


def test_an_exception_in_the_block_still_restores_blas(threads, fake_blas):
    threads(2)
    with pytest.raises(RuntimeError, match="inside"):
        with parallel.hold_blas():
            raise RuntimeError("inside")
    assert fake_blas.num_threads == 4 and not parallel.blas_held()
    with parallel.hold_blas():  # and a later scope holds again
        assert fake_blas.num_threads == 1


def test_one_thread_or_no_blas_library_means_the_block_changes_nothing(threads, fake_blas, monkeypatch):
    threads(1)
    with parallel.hold_blas():
        assert not parallel.blas_held() and parallel.split(lambda a, b: (a, b), 4, blas=True) == [(0, 4)]
    assert fake_blas.changes == []  # one thread: BLAS keeps its own threads
    threads(2)
    monkeypatch.setattr(parallel, "_blas", type("Controller", (), {"lib_controllers": []})())  # none it sees
    monkeypatch.setattr(parallel, "_BLAS_ENV", ())
    with parallel.hold_blas():
        assert not parallel.blas_held() and parallel.split(lambda a, b: (a, b), 4, blas=True) == [(0, 4)]


def test_hold_blas_sets_the_real_blas_library_and_gives_its_threads_back(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    threads(2)

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    np.ones((8, 8)) @ np.ones((8, 8))  # BLAS is loaded
    original = blas_threads()
    if not original:
        pytest.skip("threadpoolctl sees no BLAS library")
    with parallel.hold_blas():
        assert blas_threads() == [1] * len(original)
        a = np.ones((64, 64))
        parts = parallel.split(lambda i, j: a[i:j] @ a, 64, blas=True)
        assert len(parts) == 2 and np.array_equal(np.concatenate(parts), a @ a)
    assert blas_threads() == original


# ---- the thread count -----------------------------------------------------------------------------
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


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000", 2),
                                        ("50000 100000", 1), ("garbage", None)])
def test_a_cgroup_cpu_quota_caps_the_default_thread_count(tmp_path, text, cpus):
    f = tmp_path / "cpu.max"
    f.write_text(text)
    assert parallel._cgroup_cpu_quota(str(f)) == cpus
    assert parallel._cgroup_cpu_quota(str(tmp_path / "absent")) is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_working_pool(threads):
    threads(2)
    parallel.split(lambda a, b: None, 2)  # the parent's pool now has a thread
    pid = os.fork()
    if pid == 0:  # child: would hang on the parent's (absent) worker thread without the fork hook
        ok = parallel.split(lambda a, b: (a, b), 2) == [(0, 1), (1, 2)]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# ---- gemm: the one kernel that splits its own rows ------------------------------------------------
def test_gemm_splits_its_rows_outside_a_part_and_runs_whole_inside_one(threads, fake_blas, monkeypatch):
    threads(3)
    calls = []
    product = gemm._product

    def spy(a, b, out, dtype):
        calls.append((a.shape[0], threading.get_ident()))
        return product(a, b, out, dtype)
    monkeypatch.setattr(gemm, "_product", spy)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 4))
    reference = (a[:, :, None] * b[None, :, :]).sum(axis=1)  # sum of products, no BLAS
    with parallel.hold_blas():
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
        parallel.split(lambda r0, r1: gemm.matmul(a, b), 2)  # inside a part: no nested split
        assert [rows for rows, _ in calls] == [7, 7]
    calls.clear()
    gemm.matmul(a, b)  # outside the scope the split holds BLAS itself: the same parts
    assert sorted(rows for rows, _ in calls) == [2, 2, 3] and fake_blas.num_threads == 4
    a16, b16 = a.astype(np.float16), b.astype(np.float16)
    out16 = gemm.matmul(a16, b16)  # float16 operands multiply in float32, the product rounds to float16
    assert out16.dtype == np.float16
    ref16 = (a16.astype(np.float64)[:, :, None] * b16.astype(np.float64)[None]).sum(axis=1)
    np.testing.assert_allclose(out16.astype(np.float64), ref16, rtol=2e-3, atol=2e-3)


def test_a_failed_hold_puts_every_library_back_and_holds_nothing(threads, monkeypatch):
    threads(2)
    good, bad = FakeLibrary(4), FakeLibrary(3)

    def refuse(n):
        raise OSError("cannot set threads")
    bad.set_num_threads = refuse
    monkeypatch.setattr(parallel, "_blas", type("Controller", (), {"lib_controllers": [good, bad]})())
    with pytest.raises(OSError, match="cannot set threads"):
        with parallel.hold_blas():
            pass
    assert good.num_threads == 4 and not parallel.blas_held()
    assert parallel._holds == 0  # the next scope starts clean
    monkeypatch.setattr(parallel, "_blas", type("Controller", (), {"lib_controllers": [good]})())
    with parallel.hold_blas():
        assert parallel.blas_held() and good.num_threads == 1
    assert good.num_threads == 4


def test_changing_the_thread_count_inside_a_hold_follows_it(threads, fake_blas):
    threads(2)
    with parallel.hold_blas():
        assert fake_blas.num_threads == 1
        threads(1)  # one kernel thread: BLAS gets its own threads back at once
        assert fake_blas.num_threads == 4 and not parallel.blas_held()
        threads(3)
        assert fake_blas.num_threads == 1 and parallel.blas_held()
    assert fake_blas.num_threads == 4 and not parallel.blas_held()


def test_split_rows_cuts_the_leading_axis_and_reduces(threads):
    threads(2)
    a = np.arange(40.0).reshape(8, 5)
    spans = parallel.split_rows(lambda r0, r1: (r0, r1), a)
    assert [i for r0, r1 in spans for i in range(r0, r1)] == list(range(8))
    assert parallel.split_rows(lambda r0, r1: a[r0:r1].sum(), a, reduce=sum) == a.sum()
    assert parallel.split_rows(lambda r0, r1: (r0, r1), np.empty((0, 3))) == [(0, 0)]
