"""minires.utils.data (PyTorch's torch.utils.data): samplers and splits against closed forms, default_collate on
nested samples, and the multi-process DataLoader: order, seeds, worker errors and deaths, shutdown, bad arguments."""
import collections
import os
import signal
import time
import types

import numpy as np
import pytest

import minires as mr
from minires.utils import data as D
from minires.utils.data import distributed as dist_sampler

Pair = collections.namedtuple("Pair", "image label")


# ---- datasets (top level, so that spawned workers can unpickle them) -------------------------------------

class Indexed(D.Dataset):
    """Sample i is (a (2, 3) float32 array filled with i, the int i): batches reveal their indices."""

    def __init__(self, n=20, delay=None):
        self.n, self.delay = n, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.delay is not None:
            time.sleep(self.delay(i))
        return np.full((2, 3), i, np.float32), int(i)


class Noisy(Indexed):
    """Indexed plus one draw of minires's global generator and one of Python's random per sample."""

    def __getitem__(self, i):
        import random
        return float(mr.rand(()).item()), random.random(), int(i)


class WorkerProbe(Indexed):
    """What the worker that made sample i knows: its WorkerInfo, its pid, minires's thread count."""

    def __getitem__(self, i):
        info = D.get_worker_info()
        return info.id, info.num_workers, info.seed, os.getpid(), mr.parallel.get_num_threads(), int(i)


class Failing(Indexed):
    """Raises a ValueError at index `bad`; kills its own worker at index `kill`."""

    def __init__(self, n=20, bad=None, kill=None):
        super().__init__(n)
        self.bad, self.kill = bad, kill

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"bad sample {i}")
        if i == self.kill and D.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(i)


class Shards(D.IterableDataset):
    """Yields range(n); in worker w of W it yields the w-th contiguous part, cut at `cuts` (PyTorch's sharding)."""

    def __init__(self, n, cuts=None):
        self.n, self.cuts = n, cuts

    def __iter__(self):
        info = D.get_worker_info()
        if info is None:
            return iter(range(self.n))
        cuts = self.cuts or [self.n * k // info.num_workers for k in range(info.num_workers + 1)]
        return iter(range(cuts[info.id], cuts[info.id + 1]))


def labels(loader):
    """The sample indices of each batch (the label field, or the whole batch of an index-yielding dataset)."""
    return [(b[-1] if isinstance(b, list) else b).numpy().tolist() for b in loader]


def record_worker(worker_id):
    mr.manual_seed(1000 + worker_id)  # worker_init_fn runs after the worker's own seeding


# ---- samplers -------------------------------------------------------------------------------------------

def test_sequential_and_batch_samplers_closed_forms():
    assert list(D.SequentialSampler(range(7))) == list(range(7))
    for n, b in [(10, 3), (9, 3), (1, 4), (0, 2)]:
        for drop in (False, True):
            s = D.BatchSampler(D.SequentialSampler(range(n)), b, drop)
            full = [list(range(i, min(i + b, n))) for i in range(0, n, b)]
            expected = [x for x in full if len(x) == b] if drop else full
            assert list(s) == expected and len(s) == len(expected)


def test_random_sampler_permutes_and_repeats():
    mr.manual_seed(0)
    order = list(D.RandomSampler(range(10)))
    assert sorted(order) == list(range(10)) and order != list(range(10))
    long = list(D.RandomSampler(range(4), num_samples=10))
    assert len(long) == 10 and sorted(long[:4]) == sorted(long[4:8]) == [0, 1, 2, 3] and len(set(long[8:])) == 2
    drawn = list(D.RandomSampler(range(5), replacement=True, num_samples=200))
    assert len(drawn) == 200 and set(drawn) == set(range(5))  # every index appears with replacement (p > 1-1e-18)
    # the order follows minires's global seed, or the sampler's own generator
    mr.manual_seed(3)
    a = list(D.RandomSampler(range(50)))
    mr.manual_seed(3)
    assert list(D.RandomSampler(range(50))) == a
    g1, g2 = mr.Generator().manual_seed(7), mr.Generator().manual_seed(7)
    assert list(D.RandomSampler(range(50), generator=g1)) == list(D.RandomSampler(range(50), generator=g2))
    assert list(D.RandomSampler(range(50), generator=g1)) != list(D.RandomSampler(range(50), generator=g1))


def test_subset_and_weighted_samplers():
    idx = [3, 8, 11, 40]
    assert sorted(D.SubsetRandomSampler(idx)) == idx
    w = [0.0, 1.0, 3.0, 0.0]
    draws = np.array(list(D.WeightedRandomSampler(w, 4000, generator=mr.Generator().manual_seed(0))))
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == counts[3] == 0 and abs(counts[2] / 4000 - 0.75) < 0.03  # 4.5 sigma of a binomial
    once = list(D.WeightedRandomSampler([1, 1, 1, 5], 4, replacement=False))
    assert sorted(once) == [0, 1, 2, 3]


def test_sampler_bad_arguments():
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        D.BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        D.BatchSampler(range(3), 2, "no")
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        D.RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        D.RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="without replacement"):
        D.WeightedRandomSampler([1, 0, 1], 3, replacement=False)


def test_distributed_sampler_parts():
    n, r = 12, 3
    for shuffle in (False, True):
        parts = [list(D.DistributedSampler(range(n), r, k, shuffle=shuffle, seed=5)) for k in range(r)]
        assert all(len(p) == 4 for p in parts) and sorted(sum(parts, [])) == list(range(n))
        if not shuffle:
            assert parts[1] == [1, 4, 7, 10]
    # 10 over 3: padded with the first indices to 12 (4 each); drop_last keeps 9 (3 each)
    padded = [list(D.DistributedSampler(range(10), 3, k, shuffle=False)) for k in range(3)]
    assert padded == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    dropped = [list(D.DistributedSampler(range(10), 3, k, shuffle=False, drop_last=True)) for k in range(3)]
    assert dropped == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    s, other = D.DistributedSampler(range(30), 2, 0, seed=1), D.DistributedSampler(range(30), 2, 1, seed=1)
    first = list(s)
    s.set_epoch(1)
    other.set_epoch(1)
    assert list(s) != first and sorted(list(s) + list(other)) == list(range(30))  # one epoch, one order, split
    with pytest.raises(ValueError, match="invalid rank 3"):
        D.DistributedSampler(range(10), 3, 3)


def test_distributed_sampler_defaults_come_from_the_launcher(monkeypatch):
    from minires.distributed import comm
    for var in comm.RANK_VARS + comm.SIZE_VARS:
        monkeypatch.delenv(var, raising=False)

    def no_mpi():
        raise AssertionError("world() must not be called for one process")
    monkeypatch.setattr(dist_sampler, "world", no_mpi)
    s = D.DistributedSampler(range(8))
    assert (s.num_replicas, s.rank) == (1, 0)
    monkeypatch.setenv("PMI_SIZE", "1")
    monkeypatch.setenv("PMI_RANK", "0")
    assert D.DistributedSampler(range(8)).num_replicas == 1
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "2")
    monkeypatch.setattr(dist_sampler, "world", lambda: types.SimpleNamespace(size=4, rank=2))
    s = D.DistributedSampler(range(8), shuffle=False)
    assert (s.num_replicas, s.rank, list(s)) == (4, 2, [2, 6])


# ---- datasets and random_split --------------------------------------------------------------------------

def test_datasets_compose():
    x, y = mr.arange(12).reshape(6, 2), mr.arange(6)
    ds = D.TensorDataset(x, y)
    assert len(ds) == 6 and ds[4][0].numpy().tolist() == [8, 9] and int(ds[4][1].item()) == 4
    both = Indexed(3) + Indexed(2)
    assert isinstance(both, D.ConcatDataset) and len(both) == 5
    assert [both[i][1] for i in range(5)] == [0, 1, 2, 0, 1] and both[-1][1] == 1
    with pytest.raises(IndexError):
        both[5]
    sub = D.Subset(Indexed(10), [7, 2])
    assert [sub[0][1], sub[1][1], len(sub)] == [7, 2, 2]
    assert list(Shards(3) + Shards(2)) == [0, 1, 2, 0, 1]
    with pytest.raises(ValueError, match="size mismatch"):
        D.TensorDataset(mr.zeros(3, 2), mr.zeros(4))
    with pytest.raises(TypeError, match="IterableDataset"):
        D.ConcatDataset([Indexed(2), Shards(2)])


@pytest.mark.parametrize("n, lengths, expected", [
    (10, [3, 7], [3, 7]),
    (10, [0.3, 0.3, 0.4], [3, 3, 4]),
    (11, [0.5, 0.5], [6, 5]),            # floor gives 5 + 5; the remainder goes to the first split
    (7, [1 / 3, 1 / 3, 1 / 3], [3, 2, 2]),
    (8, [0.1, 0.1, 0.8], [1, 1, 6]),    # floors 0, 0, 6 = 6; the 2 left go to splits 0 and 1
])
def test_random_split_lengths_and_disjointness(n, lengths, expected):
    parts = D.random_split(Indexed(n), lengths, generator=mr.Generator().manual_seed(0))
    assert [len(p) for p in parts] == expected
    seen = [p[i][1] for p in parts for i in range(len(p))]
    assert sorted(seen) == list(range(n))
    again = D.random_split(Indexed(n), lengths, generator=mr.Generator().manual_seed(0))
    assert [p.indices for p in again] == [p.indices for p in parts]


def test_random_split_bad_lengths():
    with pytest.raises(ValueError, match="does not equal the length"):
        D.random_split(Indexed(10), [3, 3])
    with pytest.raises(ValueError, match="between 0 and 1"):
        D.random_split(Indexed(10), [1.5, -0.5])


# ---- default_collate ------------------------------------------------------------------------------------

def test_default_collate_nested():
    samples = [{"img": np.full((2, 2), i, np.float32), "meta": (i, float(i) / 2, f"s{i}", i % 2 == 0),
                "pair": Pair(mr.tensor([i, i + 1]), [i, -i])} for i in range(3)]
    b = D.default_collate(samples)
    assert isinstance(b, dict) and b["img"].shape == (3, 2, 2) and b["img"].dtype == np.float32
    assert b["img"].numpy()[:, 0, 0].tolist() == [0, 1, 2]
    ints, floats, names, flags = b["meta"]  # a tuple comes back as a list, as in PyTorch
    assert isinstance(b["meta"], list)
    assert ints.dtype == np.int64 and ints.numpy().tolist() == [0, 1, 2]
    assert floats.dtype == np.float64 and floats.numpy().tolist() == [0.0, 0.5, 1.0]
    assert names == ("s0", "s1", "s2") and flags.dtype == np.bool_ and flags.numpy().tolist() == [True, False, True]
    assert isinstance(b["pair"], Pair) and b["pair"].image.numpy().tolist() == [[0, 1], [1, 2], [2, 3]]
    assert [t.numpy().tolist() for t in b["pair"].label] == [[0, 1, 2], [0, -1, -2]]
    assert D.default_collate([("a", 1), ("b", 2)])[0] == ("a", "b")  # a field of tuples stays a tuple, as PyTorch's
    assert D.default_collate([{"s": "a"}, {"s": "b"}])["s"] == ["a", "b"]
    scalars = D.default_collate([np.float32(1.5), np.float32(2)])
    assert scalars.dtype == np.float32 and scalars.numpy().tolist() == [1.5, 2.0]


def test_default_collate_errors_name_the_field():
    with pytest.raises(ValueError, match=r"default_collate: field \[0\].*\(2, 3\) in sample 0, \(2, 4\) in sample 1"):
        D.default_collate([(np.zeros((2, 3)), 0), (np.zeros((2, 4)), 1)])
    image = pytest.importorskip("PIL.Image").new("RGB", (4, 4))
    with pytest.raises(TypeError, match=r"default_collate: field \['x'\].*PIL.*ToTensor"):
        D.default_collate([{"x": image}, {"x": image}])
    with pytest.raises(ValueError, match="equal size"):
        D.default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate: .*object"):
        D.default_collate([np.array(["a"], dtype=object)] * 2)


def test_default_convert():
    out = D.default_convert({"a": np.arange(3), "b": (np.float64(2.0), "s", 4)})
    assert isinstance(out["a"], mr.Tensor) and out["a"].numpy().tolist() == [0, 1, 2]
    assert isinstance(out["b"], list) and float(out["b"][0].item()) == 2.0 and out["b"][1:] == ["s", 4]


# ---- DataLoader in the main process ---------------------------------------------------------------------

def test_loader_batches_len_and_unbatched():
    dl = D.DataLoader(Indexed(10), batch_size=4)
    batches = list(dl)
    assert len(dl) == 3 and [b[1].numpy().tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    assert len(D.DataLoader(Indexed(10), batch_size=4, drop_last=True)) == 2
    single = list(D.DataLoader(Indexed(3), batch_size=None))
    assert len(single) == 3 and single[2][0].shape == (2, 3) and single[2][1] == 2


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_workers=-1), ValueError, "num_workers option should be non-negative"),
    (dict(timeout=-1), ValueError, "timeout option should be non-negative"),
    (dict(timeout=5), ValueError, "timeout=5 applies to worker processes only"),
    (dict(prefetch_factor=2), ValueError, "prefetch_factor option could only be specified in multiprocessing"),
    (dict(persistent_workers=True), ValueError, "persistent_workers option needs num_workers > 0"),
    (dict(sampler=[0, 1], shuffle=True), ValueError, "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0, 1]], batch_size=2), ValueError, "batch_sampler option is mutually exclusive"),
    (dict(batch_sampler=[[0, 1]], drop_last=True), ValueError, "batch_sampler option is mutually exclusive"),
    (dict(batch_size=None, drop_last=True), ValueError, "disables auto-batching"),
    (dict(batch_size=0), ValueError, "batch_size should be a positive integer"),
    (dict(multiprocessing_context="fork"), ValueError, "multiprocessing_context can only be used"),
    (dict(num_workers=1, multiprocessing_context="nope"), ValueError, "valid start method"),
    (dict(num_workers=1, multiprocessing_context=3), TypeError, "valid context object"),
    (dict(num_workers="2"), TypeError, "num_workers must be an int"),
    (dict(generator=3), TypeError, "generator"),
])
def test_loader_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        D.DataLoader(Indexed(4), **kwargs)


def test_loader_iterable_dataset_arguments_and_fixed_attributes():
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified shuffle"):
        D.DataLoader(Shards(4), shuffle=True)
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified sampler"):
        D.DataLoader(Shards(4), sampler=[0])
    dl = D.DataLoader(Indexed(4))
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        dl.batch_size = 3
    assert labels(D.DataLoader(Shards(5), batch_size=2)) == [[0, 1], [2, 3], [4]]
    assert labels(D.DataLoader(Shards(5), batch_size=2, drop_last=True)) == [[0, 1], [2, 3]]
