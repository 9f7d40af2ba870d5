"""minires.utils.data.DataLoader with worker processes: the same batches as in the main process, PyTorch's seeds
and order, errors and deaths of workers reported in the main process, no process left behind."""
import multiprocessing
import os
import pickle
import random
import time

import numpy as np
import pytest

import minires as mr
import minires.functional as F
from minires.utils import data as D
from test_utils_data import Failing, Indexed, Noisy, Shards, WorkerProbe, labels, record_worker

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="these tests fork workers (Linux, macOS)")


def contents(loader):
    return [[t.numpy().copy() if isinstance(t, mr.Tensor) else t for t in batch] for batch in loader]


def no_children():
    return multiprocessing.active_children() == []


def slow_first_batch(i):
    return 0.15 if i < 2 else 0.0


def slow_first_item(i):
    return 1.0 if i == 0 else 0.0


class Seeds(Indexed):
    """The worker's seed and the first draws of minires's and Python's global generators for sample i."""

    def __getitem__(self, i):
        return D.get_worker_info().seed, float(mr.rand(()).item()), random.random(), int(i)


class Threads(Indexed):
    """Runs a convolution (minires's thread-split kernels) in the worker and reports the thread count."""

    def __getitem__(self, i):
        y = F.conv2d(mr.ones(2, 3, 16, 16), mr.ones(4, 3, 3, 3), padding=1)
        return mr.parallel.get_num_threads(), float(y.sum().item()), int(i)


def test_workers_give_the_main_process_batches():
    runs, after = [], []
    for workers in (0, 2):
        mr.manual_seed(0)
        runs.append(contents(D.DataLoader(Indexed(23), batch_size=4, shuffle=True, num_workers=workers)))
        after.append(float(mr.rand(()).item()))
    assert after[0] == after[1]  # both drew the same seeds from minires's global generator
    assert [b[1].tolist() for b in runs[0]] == [b[1].tolist() for b in runs[1]]
    assert sorted(sum((b[1].tolist() for b in runs[0]), [])) == list(range(23))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a[0], b[0])
        assert b[0].dtype == np.float32 and b[1].dtype == np.int64
    g = mr.Generator().manual_seed(4)
    one = labels(D.DataLoader(Indexed(23), batch_size=4, shuffle=True, num_workers=2, generator=g))
    g.manual_seed(4)
    assert labels(D.DataLoader(Indexed(23), batch_size=4, shuffle=True, generator=g)) == one
    assert no_children()


def test_same_seed_same_random_batches():
    def run(seed):
        mr.manual_seed(seed)
        return contents(D.DataLoader(Noisy(12), batch_size=3, shuffle=True, num_workers=2))
    a, b, c = run(5), run(5), run(6)
    assert all(np.array_equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_worker_seeds_follow_pytorch():
    mr.manual_seed(11)
    batches = list(D.DataLoader(Seeds(4), batch_size=1, num_workers=2))
    seeds = [int(b[0].item()) for b in batches]
    assert seeds[1] == seeds[0] + 1 and seeds[2:] == seeds[:2]  # worker i: base_seed + i; batch k by worker k % 2
    for k in (0, 1):  # sample k is worker k's first draw after seeding with its seed
        mr.manual_seed(seeds[k])
        random.seed(seeds[k])
        assert float(batches[k][1].item()) == float(mr.rand(()).item())
        assert float(batches[k][2].item()) == random.random()
    mr.manual_seed(11)
    assert int(next(iter(D.DataLoader(Seeds(2), num_workers=2)))[0].item()) == seeds[0]
    # worker_init_fn(i) runs after that seeding, so what it seeds wins
    first = list(D.DataLoader(Seeds(2), num_workers=2, worker_init_fn=record_worker))
    mr.manual_seed(1001)
    assert float(first[1][1].item()) == float(mr.rand(()).item())


@pytest.mark.filterwarnings("ignore:DataLoader will create 3 worker processes")
def test_order_is_sampler_order_whatever_finishes_first():
    started = time.monotonic()
    loader = D.DataLoader(Indexed(10, delay=slow_first_batch), batch_size=2, num_workers=2)
    assert labels(loader) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert time.monotonic() - started < 10
    made_by = [int(b[0][0].item()) for b in D.DataLoader(WorkerProbe(12), batch_size=2, num_workers=3)]
    assert made_by == [k % 3 for k in range(6)]


def test_worker_exception_is_raised_with_its_traceback():
    it = iter(D.DataLoader(Failing(10, bad=5), batch_size=2, num_workers=2))
    assert next(it)[1].numpy().tolist() == [0, 1] and next(it)[1].numpy().tolist() == [2, 3]
    with pytest.raises(ValueError) as info:
        next(it)  # batch 2 = samples 4, 5, made by worker 0
    text = str(info.value)
    assert "Caught ValueError in DataLoader worker process 0" in text
    assert "Traceback" in text and "__getitem__" in text and "bad sample 5" in text
    assert next(it)[1].numpy().tolist() == [6, 7]  # the iteration goes on, as PyTorch's
    del it, info  # the traceback holds the iterator's frame
    assert no_children()


def test_worker_init_fn_error_comes_with_the_first_batch():
    def bad_init(worker_id):
        raise KeyError(f"no such worker {worker_id}")
    with pytest.raises(KeyError, match="in DataLoader worker process 0") as info:
        list(D.DataLoader(Indexed(4), num_workers=1, worker_init_fn=bad_init))
    assert "no such worker 0" in str(info.value)
    del info  # the traceback holds the iterator's frame
    assert no_children()


def test_killed_worker_is_a_runtime_error_not_a_hang():
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader worker 1 \(pid \d+\) exited unexpectedly.*SIGKILL"):
        list(D.DataLoader(Failing(12, kill=3), batch_size=2, num_workers=2))  # batch 1 = samples 2, 3
    assert time.monotonic() - started < 10
    assert no_children()


def test_timeout():
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.3 seconds"):
        list(D.DataLoader(Indexed(2, delay=slow_first_item), num_workers=1, timeout=0.3))
    assert no_children()


def test_early_break_and_dropped_loaders_leave_no_process():
    for batch in D.DataLoader(Indexed(40), batch_size=2, num_workers=2):
        assert len(multiprocessing.active_children()) == 2
        break
    assert no_children()
    loader = D.DataLoader(WorkerProbe(8), batch_size=2, num_workers=2, persistent_workers=True)
    pids = [sorted({int(p) for b in loader for p in b[3].numpy()}) for _ in range(2)]
    assert pids[0] == pids[1] and len(pids[0]) == 2  # the same two processes serve both epochs
    assert labels(loader) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    next(iter(loader))  # an epoch left unfinished, then the next one starts from its beginning
    assert labels(loader) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    del loader
    assert no_children()


def test_iterable_dataset_each_worker_its_shard():
    assert labels(D.DataLoader(Shards(10), batch_size=2, num_workers=2)) == [[0, 1], [5, 6], [2, 3], [7, 8], [4], [9]]
    # uneven shards [0, 3) and [3, 10): worker 0 runs out at task 4, then only worker 1 gets tasks
    uneven = D.DataLoader(Shards(10, cuts=[0, 3, 10]), batch_size=2, num_workers=2)
    assert labels(uneven) == [[0, 1], [3, 4], [2], [5, 6], [7, 8], [9]]
    assert labels(D.DataLoader(Shards(10, cuts=[0, 3, 10]), batch_size=2, num_workers=2, drop_last=True)) \
        == [[0, 1], [3, 4], [5, 6], [7, 8]]
    assert no_children()


def test_workers_run_one_thread_after_fork():
    mr.parallel.set_num_threads(2)
    F.conv2d(mr.ones(8, 16, 32, 32), mr.ones(16, 16, 3, 3), padding=1)  # the parent's thread pool is running
    got = list(D.DataLoader(Threads(4), batch_size=2, num_workers=2, timeout=30))
    assert [b[0].numpy().tolist() for b in got] == [[1, 1], [1, 1]]
    assert all(b[1].numpy().tolist() == got[0][1].numpy().tolist() for b in got)
    assert mr.parallel.get_num_threads() == 2  # the parent keeps its own


def test_unbatched_and_pin_memory_with_workers():
    got = list(D.DataLoader(Indexed(5), batch_size=None, num_workers=2, pin_memory=True))
    assert [g[1] for g in got] == [0, 1, 2, 3, 4] and all(isinstance(g[0], mr.Tensor) for g in got)


def test_spawn_context():
    loader = D.DataLoader(Indexed(6), batch_size=3, num_workers=1, multiprocessing_context="spawn")
    assert labels(loader) == [[0, 1, 2], [3, 4, 5]]
    assert no_children()


def test_spawn_names_what_cannot_be_pickled():
    loader = D.DataLoader(Indexed(4), num_workers=1, multiprocessing_context="spawn", collate_fn=lambda b: b)
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError), match="cannot be pickled"):
        next(iter(loader))
    assert no_children()


class PilImages(D.Dataset):
    """CIFAR10's sample path: a PIL image of a fixed random uint8 array through a transform, an int label."""

    def __init__(self, n, transform):
        self.data = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.data[i])), int(i) % 10


def test_vision_pipeline_in_workers_float32_images_int64_labels():
    pytest.importorskip("PIL")
    T = pytest.importorskip("minires.vision.transforms")
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])

    def run():
        mr.manual_seed(2)
        return contents(D.DataLoader(PilImages(24, tf), batch_size=8, shuffle=True, num_workers=2))
    a, b = run(), run()
    assert a[0][0].shape == (8, 3, 32, 32) and a[0][0].dtype == np.float32 and a[0][1].dtype == np.int64
    assert all(np.array_equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))  # augmentations repeat too
    plain = PilImages(24, T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))]))
    x, y = next(iter(D.DataLoader(plain, batch_size=3, num_workers=2)))
    expected = (plain.data[:3].transpose(0, 3, 1, 2) / 255.0 - 0.5) / 0.25  # (B, C, H, W), by hand
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)


class Counted(Indexed):
    """Indexed that counts, across processes, the samples fetched so far."""

    def __init__(self, n, counter):
        super().__init__(n)
        self.counter = counter

    def __getitem__(self, i):
        with self.counter.get_lock():
            self.counter.value += 1
        return super().__getitem__(i)


@pytest.mark.parametrize("prefetch", [1, 3])
def test_prefetch_factor_batches_in_flight_per_worker(prefetch):
    counter = multiprocessing.get_context("fork").Value("i", 0)
    it = iter(D.DataLoader(Counted(40, counter), batch_size=2, num_workers=2, prefetch_factor=prefetch))
    next(it)
    expected = 2 * (2 * prefetch + 1)  # 2 * prefetch batches at the start, one more per batch read; 2 samples each
    deadline = time.monotonic() + 10
    while counter.value < expected and time.monotonic() < deadline:  # a loaded machine may be slow to run them
        time.sleep(0.05)
    time.sleep(0.3)  # time enough to fetch more, if they were asked for more
    assert counter.value == expected
    del it
    assert no_children()


def test_persistent_workers_keep_their_random_streams():
    def two_epochs():
        mr.manual_seed(8)
        loader = D.DataLoader(Noisy(6), batch_size=3, num_workers=2, persistent_workers=True)
        return [[float(v) for b in loader for v in b[0].numpy()] for _ in range(2)]
    a, b = two_epochs(), two_epochs()
    assert a == b and a[0] != a[1]  # each epoch goes on from where the workers' generators were


def _rebuild_fragile():
    if D.get_worker_info() is None:
        raise ValueError("Fragile cannot be rebuilt in the main process")
    return Fragile()


class Fragile:
    """Pickles in a worker, fails to unpickle in the main process."""

    def __reduce__(self):
        return _rebuild_fragile, ()


def test_batch_that_cannot_be_unpickled_is_an_error_of_its_batch():
    def collate(samples):
        return Fragile() if samples[0][1] == 0 else D.default_collate(samples)
    it = iter(D.DataLoader(Indexed(6), batch_size=2, num_workers=2, collate_fn=collate))
    with pytest.raises(RuntimeError, match="worker 0 could not be unpickled in the main process.*cannot be rebuilt"):
        next(it)
    assert next(it)[1].numpy().tolist() == [2, 3] and next(it)[1].numpy().tolist() == [4, 5]
