"""DataLoader: shapes, coverage, (seed, epoch) determinism, drop_last, worker errors and thread cleanup."""
import threading

import numpy as np
import pytest

import minires as mr
from minires.data import DataLoader
from minires.data import transforms as T


class ArrayDataset:
    """A CIFAR10-like dataset whose label is the sample index, so batches reveal the order."""

    def __init__(self, n=37, seed=0):
        self.data = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = np.arange(n, dtype=np.int64)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i], int(self.targets[i])


class ItemDataset(ArrayDataset):
    """The same samples, reachable only through __getitem__."""

    def __init__(self, *args):
        super().__init__(*args)
        self._d, self._t = self.data, self.targets
        del self.data, self.targets

    def __len__(self):
        return len(self._d)

    def __getitem__(self, i):
        return self._d[i], int(self._t[i])


def loader_threads():
    return [t for t in threading.enumerate() if t.name == "minires-DataLoader"]


def collect(loader):
    return [(x.numpy().copy(), y.numpy().copy()) for x, y in loader]


@pytest.mark.parametrize("make", [ArrayDataset, ItemDataset])
def test_batches_are_scaled_nchw_float32(make):
    ds = make(37)
    ref = ArrayDataset(37)
    loader = DataLoader(ds, batch_size=16)
    assert len(loader) == 3
    batches = list(loader)
    assert [x.shape for x, _ in batches] == [(16, 3, 32, 32), (16, 3, 32, 32), (5, 3, 32, 32)]
    for b, (x, y) in enumerate(batches):
        assert isinstance(x, mr.Tensor) and x.dtype == np.float32 and x.device == "cpu"
        assert isinstance(y, mr.Tensor) and y.dtype == np.int64 and y.shape == (x.shape[0],)
        for k, i in enumerate(range(16 * b, 16 * b + x.shape[0])):  # no shuffle: in order
            assert y.data[k] == i
            for c in range(3):
                np.testing.assert_array_equal(x.data[k, c], ref.data[i, :, :, c].astype(np.float32) / 255)


def test_shuffle_visits_every_sample_once_and_is_reproducible():
    ds = ArrayDataset(50)
    crop = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
    loader = DataLoader(ds, batch_size=8, shuffle=True, seed=3, transform=crop)
    loader.set_epoch(4)
    a = collect(loader)
    labels = np.concatenate([y for _, y in a])
    np.testing.assert_array_equal(np.sort(labels), np.arange(50))
    assert not np.array_equal(labels, np.arange(50))
    again = DataLoader(ds, batch_size=8, shuffle=True, seed=3, transform=crop)
    again.set_epoch(4)  # a fresh loader resumed at epoch 4 sees exactly the same batches and augmentation
    b = collect(again)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    again.set_epoch(5)
    assert not np.array_equal(np.concatenate([y for _, y in collect(again)]), labels)
    other_seed = DataLoader(ds, batch_size=8, shuffle=True, seed=4)
    other_seed.set_epoch(4)
    assert not np.array_equal(np.concatenate([y for _, y in collect(other_seed)]), labels)


def test_epoch_advances_without_set_epoch():
    loader = DataLoader(ArrayDataset(30), batch_size=30, shuffle=True)
    first, second = collect(loader)[0][1], collect(loader)[0][1]
    assert loader.epoch == 1 and not np.array_equal(first, second)
    loader.set_epoch(0)
    np.testing.assert_array_equal(collect(loader)[0][1], first)


def test_drop_last():
    loader = DataLoader(ArrayDataset(37), batch_size=16, shuffle=True, drop_last=True)
    assert len(loader) == 2
    batches = collect(loader)
    assert [len(y) for _, y in batches] == [16, 16]
    assert len(set(np.concatenate([y for _, y in batches]))) == 32


def test_worker_exception_reaches_the_consumer():
    calls = []

    def failing(x, rng):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("augmentation exploded")
        return x

    loader = DataLoader(ArrayDataset(40), batch_size=8, transform=failing)
    got = []
    with pytest.raises(RuntimeError, match="augmentation exploded"):
        for x, y in loader:
            got.append(y)
    assert len(got) == 1 and not loader_threads()


def test_early_break_leaves_no_thread():
    loader = DataLoader(ArrayDataset(64), batch_size=4, prefetch=2)
    for i, _ in enumerate(loader):
        if i == 1:
            break
    assert not loader_threads()
    it = iter(loader)
    next(it)
    it.close()  # an explicit close stops the worker too
    assert not loader_threads()


def test_bad_arguments():
    with pytest.raises(ValueError, match="DataLoader: batch_size must be a positive int"):
        DataLoader(ArrayDataset(4), batch_size=0)
    with pytest.raises(ValueError, match="DataLoader.set_epoch: epoch"):
        DataLoader(ArrayDataset(4)).set_epoch(-1)
    with pytest.raises(TypeError, match="DataLoader: transform must be callable"):
        DataLoader(ArrayDataset(4), transform="flip")


def test_device_batches(device):
    loader = DataLoader(ArrayDataset(10), batch_size=4, device=device,
                        transform=T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]))
    cpu = DataLoader(ArrayDataset(10), batch_size=4, transform=loader.transform)
    for (x, y), (xc, yc) in zip(loader, cpu, strict=True):
        assert x.device.startswith(device) and y.device.startswith(device)
        np.testing.assert_allclose(x.numpy(), xc.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(y.numpy(), yc.numpy())


# ---- datasets of any sample shape (issue 14, item 7) ---------------------------------------------
def test_tensor_dataset_batches_every_field_along_a_new_leading_axis():
    from minires.data import TensorDataset
    rng = np.random.default_rng(0)
    feats, extra, labels = rng.standard_normal((10, 3, 5, 7)), rng.standard_normal((10, 2)), np.arange(10)
    ds = TensorDataset(mr.tensor(feats), extra, labels)
    assert len(ds) == 10 and [tuple(t.shape) for t in ds[4]] == [(3, 5, 7), (2,), ()]
    batches = list(DataLoader(ds, batch_size=4))
    assert [tuple(b[0].shape) for b in batches] == [(4, 3, 5, 7), (4, 3, 5, 7), (2, 3, 5, 7)]
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), feats)  # (C, H, W) kept
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), extra)
    np.testing.assert_array_equal(np.concatenate([b[2].numpy() for b in batches]), labels)
    assert batches[0][0].dtype == np.float64  # the samples' dtype, as PyTorch's collate
    with pytest.raises(ValueError, match=r"TensorDataset: .*one length.*\[10, 9\]"):
        TensorDataset(feats, labels[:9])
    with pytest.raises(ValueError, match="TensorDataset: needs at least one"):
        TensorDataset()


class ChwFloatDataset:
    """float (C, H, W) samples through __getitem__ only: batched as (B, C, H, W), never transposed."""

    def __init__(self, n=6):
        self.x = np.random.default_rng(1).standard_normal((n, 3, 8, 5)).astype(np.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i % 2


def test_float_chw_samples_are_stacked_as_they_are():
    ds = ChwFloatDataset()
    (x, y), (x2, _) = list(DataLoader(ds, batch_size=4))
    assert x.shape == (4, 3, 8, 5) and x2.shape == (2, 3, 8, 5)
    np.testing.assert_array_equal(x.numpy(), ds.x[:4])
    assert y.dtype == np.int64 and y.numpy().tolist() == [0, 1, 0, 1]


def test_uint8_samples_that_are_not_hwc_images_are_refused():
    class ChwUint8(ChwFloatDataset):
        def __getitem__(self, i):
            return (self.x[i] > 0).astype(np.uint8), 0
    with pytest.raises(ValueError, match=r"uint8 samples are read as \(H, W, C\) images.*\(3, 8, 5\)"):
        list(DataLoader(ChwUint8(), batch_size=2))


def test_image_transforms_refuse_channels_last_batches():
    x = np.zeros((2, 32, 32, 3), np.float32)
    for transform in (T.RandomCrop(32, 4), T.RandomHorizontalFlip(), T.Normalize((0.5,) * 3, (0.2,) * 3)):
        with pytest.raises(ValueError, match=r"looks channels-last \(N, H, W, C\)"):
            transform(x, np.random.default_rng(0))


def test_a_dataset_of_single_values_yields_single_tensors():
    class Points:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(3, float(i))
    batches = list(DataLoader(Points(), batch_size=2))
    assert all(isinstance(b, mr.Tensor) for b in batches)
    assert [b.shape for b in batches] == [(2, 3), (2, 3), (1, 3)]
    np.testing.assert_array_equal(batches[2].numpy(), [[4.0, 4.0, 4.0]])


# ---- replicas: each process's part of every global batch (data parallel) -------------------------------
@pytest.mark.parametrize("n, batch, replicas", [(50, 10, 2), (50, 16, 2), (40, 12, 3)])
def test_replicas_together_see_the_single_loaders_batches(n, batch, replicas):
    ds = ArrayDataset(n)
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Cutout(6)])
    for epoch in (0, 3):
        one = DataLoader(ds, batch_size=batch, shuffle=True, seed=2, transform=augment)
        one.set_epoch(epoch)
        parts = []
        for rank in range(replicas):
            loader = DataLoader(ds, batch_size=batch, shuffle=True, seed=2, transform=augment,
                                num_replicas=replicas, rank=rank)
            loader.set_epoch(epoch)
            assert len(loader) == len(one) and loader.batch_sizes() == one.batch_sizes()
            parts.append(collect(loader))
        for (x, y), *rank_parts in zip(collect(one), *parts, strict=True):
            sizes = [len(py) for _, py in rank_parts]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
            # the same samples, in the same order, augmented alike: bitwise
            np.testing.assert_array_equal(np.concatenate([py for _, py in rank_parts]), y)
            np.testing.assert_array_equal(np.concatenate([px for px, _ in rank_parts]), x)


def test_replica_arguments_are_checked():
    with pytest.raises(ValueError, match="DataLoader: batch_size 15 does not split over 2 replicas"):
        DataLoader(ArrayDataset(40), batch_size=15, num_replicas=2)
    with pytest.raises(ValueError, match=r"DataLoader: rank must be an int in \[0, 2\), got 2"):
        DataLoader(ArrayDataset(40), batch_size=16, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="DataLoader: num_replicas must be a positive int"):
        DataLoader(ArrayDataset(40), batch_size=16, num_replicas=0)
    with pytest.raises(ValueError, match="the last batch of each epoch holds 1 of the 33 samples, fewer than the 2"):
        DataLoader(ArrayDataset(33), batch_size=16, num_replicas=2)
    assert len(DataLoader(ArrayDataset(33), batch_size=16, num_replicas=2, drop_last=True)) == 2
