"""DataLoader: deterministic (seed, epoch) batches of float32 NCHW Tensors, prepared on a background thread.

With num_replicas > 1 (data-parallel training, minires.distributed) each process iterates over its
part of every global batch: the epoch's order and the global batches are those of one process, and
replica r takes the r-th of num_replicas equal parts of each, so the replicas together see exactly
the single process's batches. Augmentation draws are keyed by each sample's index (SampleRNG), so a
sample is augmented alike whichever part it falls in.
"""
from __future__ import annotations

import contextlib
import queue
import threading

import numpy as np

from .. import backend
from ..tensor import Tensor
from .transforms import SampleRNG


def _stack(field: int, column) -> np.ndarray:
    """One field of a batch's samples stacked along a new leading axis (Python ints become int64)."""
    values = [v.numpy() if isinstance(v, Tensor) else v for v in column]
    try:
        return np.stack([np.asarray(v) for v in values])
    except ValueError:
        shapes = sorted({np.shape(v) for v in values})
        raise ValueError(f"DataLoader: field {field} of the samples has different shapes within a batch: "
                         f"{shapes}") from None


class TensorDataset:
    """Sample i is (a[i] for a in arrays), as torch.utils.data.TensorDataset: arrays or Tensors of one length."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one array or Tensor")
        self.arrays = tuple(backend.to_numpy(t.array if isinstance(t, Tensor) else np.asarray(t)) for t in tensors)
        if any(a.ndim == 0 for a in self.arrays):
            raise ValueError("TensorDataset: every array needs a first axis to index samples along")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: the arrays must have one length along the first axis, got {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(Tensor(a[i]) for a in self.arrays)


class DataLoader:
    """Iterate over `dataset` in batches, each field of the samples stacked along a new leading axis.

    Samples are (x, y, ...) tuples (or single values). uint8 (H, W, C) images become float32
    (B, C, H, W) in [0, 1], as torchvision's ToTensor does; every other field, and x of any other
    dtype, is stacked as it is. `transform(x, rng)` then augments x on the device, rng being a
    SampleRNG keyed by (seed, epoch, each sample's index).

    num_replicas/rank (as PyTorch's DistributedSampler): batch_size is the global batch, split into
    num_replicas equal parts (a partial last batch into parts differing by at most one sample), of
    which this loader yields part `rank`; len() is the number of global batches on every replica."""

    def __init__(self, dataset, batch_size=128, shuffle=False, drop_last=False, seed=0, transform=None,
                 device="cpu", prefetch=2, num_replicas=1, rank=0):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int, got {seed!r}")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"DataLoader: prefetch must be a positive int, got {prefetch!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable as transform(batch, rng), got {transform!r}")
        if not isinstance(num_replicas, (int, np.integer)) or isinstance(num_replicas, bool) or num_replicas < 1:
            raise ValueError(f"DataLoader: num_replicas must be a positive int, got {num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or isinstance(rank, bool) or not 0 <= rank < num_replicas:
            raise ValueError(f"DataLoader: rank must be an int in [0, {num_replicas}), got {rank!r}")
        if batch_size % num_replicas:
            raise ValueError(f"DataLoader: batch_size {batch_size} does not split over {num_replicas} replicas; "
                             f"the global batch must be a multiple of num_replicas")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), int(seed)
        self.transform, self.device, self.prefetch = transform, backend.parse_device(device), prefetch
        self.epoch = 0
        self._epoch_set, self._started = False, False
        self._bare = False  # set by _load: whether the dataset's samples are single values
        self.check_split()

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_sizes(self) -> list[int]:
        """The sizes of the epoch's global batches (all replicas' parts together)."""
        n, b = len(self.dataset), self.batch_size
        return [min(b, n - i) for i in range(0, n - n % b if self.drop_last else n, b)]

    def check_split(self) -> None:
        """ValueError when some replica would get no sample of some batch (a short last batch)."""
        sizes = self.batch_sizes() if self.num_replicas > 1 else []
        if sizes and min(sizes) < self.num_replicas:
            raise ValueError(f"DataLoader: the last batch of each epoch holds {min(sizes)} of the {len(self.dataset)} "
                             f"samples, fewer than the {self.num_replicas} replicas, so some would get none; use "
                             f"drop_last=True, or a batch_size leaving no remainder or at least num_replicas")

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose shuffle and augmentation the next iteration reproduces."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be a non-negative int, got {epoch!r}")
        self.epoch, self._epoch_set = int(epoch), True

    def _plan(self):
        """This replica's part of each of the epoch's batches, derived only from (seed, epoch)."""
        # Without set_epoch between two passes the epoch advances by itself, so a plain `for` over epochs
        # still reshuffles; an explicit set_epoch always wins (resuming replays that epoch exactly).
        if self._started and not self._epoch_set:
            self.epoch += 1
        self._started, self._epoch_set = True, False
        self.check_split()
        # NOTE: the first of two spawned streams, as when the second seeded one rng per batch: same orders as then.
        order_seq = np.random.SeedSequence([self.seed, self.epoch]).spawn(2)[0]
        n = len(self.dataset)
        order = np.random.default_rng(order_seq).permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        batches = [order[i:min(i + self.batch_size, stop)] for i in range(0, stop, self.batch_size)]
        if self.num_replicas > 1:  # contiguous, equal parts (a short last batch: sizes differ by one at most)
            batches = [np.array_split(b, self.num_replicas)[self.rank] for b in batches]
        return batches

    def _load(self, index):
        """The batch as a list of host arrays, one per field of a sample (images and labels, say)."""
        ds = self.dataset
        data, targets = getattr(ds, "data", None), getattr(ds, "targets", None)
        if isinstance(data, np.ndarray) and isinstance(targets, np.ndarray):  # CIFAR10: no per-sample calls
            return [data[index], targets[index].astype(np.int64)]
        if isinstance(ds, TensorDataset):
            return [a[index] for a in ds.arrays]
        items = [ds[int(i)] for i in index]
        self._bare = not isinstance(items[0], (tuple, list))  # samples of one value: batches of one value
        if self._bare:
            items = [(item,) for item in items]
        if len({len(item) for item in items}) != 1:
            raise ValueError(f"DataLoader: the samples of a batch have different numbers of fields: "
                             f"{sorted({len(item) for item in items})}")
        return [_stack(field, column) for field, column in enumerate(zip(*items))]

    def _make_batch(self, index):
        fields = self._load(index)
        x = fields[0]
        if x.dtype == np.uint8:  # (H, W, C) uint8 images, as torchvision's ToTensor: float32 (C, H, W) in [0, 1]
            if x.ndim != 4 or x.shape[-1] not in (1, 2, 3, 4):
                raise ValueError(f"DataLoader: uint8 samples are read as (H, W, C) images with 1-4 channels, got "
                                 f"samples of shape {x.shape[1:]}; give float samples to batch them as they are")
            # Copy uint8 to the device (4x less traffic than float32), then convert and augment there.
            images = backend.to_device(np.ascontiguousarray(x), self.device)
            x = images.transpose(0, 3, 1, 2).astype(np.float32, order="C")  # (B, C, H, W)
            x /= 255
        else:  # anything else: the samples stacked along a new leading axis, as they are
            x = backend.to_device(np.ascontiguousarray(x), self.device)
        if self.transform is not None:
            x = self.transform(x, SampleRNG(index, self.seed, self.epoch))
        if self._bare:  # a dataset of single values yields single Tensors, as PyTorch's DataLoader
            return Tensor(x)
        return (Tensor(x),) + tuple(Tensor(backend.to_device(np.ascontiguousarray(f), self.device))
                                    for f in fields[1:])

    def _device_context(self):
        if self.device == "cpu":
            return contextlib.nullcontext()
        xp = backend.xp_for(self.device)  # the CuPy module, via the backend
        return xp.cuda.Device(int(self.device.split(":")[1]))

    def __iter__(self):
        return self._iterate(self._plan())

    def _iterate(self, batches):
        q = queue.Queue(maxsize=self.prefetch)  # bounded: the worker runs at most `prefetch` batches ahead
        stop = threading.Event()

        def put(item):
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def worker():
            try:
                with self._device_context():
                    for index in batches:
                        if stop.is_set() or not put(("batch", self._make_batch(index))):
                            return
                put(("done", None))
            except BaseException as exc:  # re-raised in the consumer
                put(("error", exc))

        thread = threading.Thread(target=worker, name="minires-DataLoader", daemon=True)
        thread.start()
        try:
            while True:
                kind, payload = q.get()
                if kind == "batch":
                    yield payload
                elif kind == "error":
                    raise payload
                else:
                    return
        finally:
            # Consumer finished, failed or stopped early (break / close / garbage collection): stop the worker.
            stop.set()
            thread.join()

    def __repr__(self):
        return (f"DataLoader(n={len(self.dataset)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch}, device={self.device!r}"
                + (f", num_replicas={self.num_replicas}, rank={self.rank})" if self.num_replicas > 1 else ")"))
