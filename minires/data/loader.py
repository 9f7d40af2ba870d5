"""DataLoader: deterministic (seed, epoch) batches of float32 NCHW Tensors, prepared on a background thread."""
from __future__ import annotations

import contextlib
import queue
import threading

import numpy as np

from .. import backend
from ..tensor import Tensor


class DataLoader:
    """Iterate over `dataset` in batches of (x float32 (B, C, H, W) in [0, 1] then `transform`, y int64 (B,))."""

    def __init__(self, dataset, batch_size=128, shuffle=False, drop_last=False, seed=0, transform=None,
                 device="cpu", prefetch=2):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int, got {seed!r}")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"DataLoader: prefetch must be a positive int, got {prefetch!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable as transform(batch, rng), got {transform!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), int(seed)
        self.transform, self.device, self.prefetch = transform, backend.parse_device(device), prefetch
        self.epoch = 0
        self._epoch_set, self._started = False, False

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose shuffle and augmentation the next iteration reproduces."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be a non-negative int, got {epoch!r}")
        self.epoch, self._epoch_set = int(epoch), True

    def _plan(self):
        """The epoch's batches of indices and its augmentation rng, both derived only from (seed, epoch)."""
        # Without set_epoch between two passes the epoch advances by itself, so a plain `for` over epochs
        # still reshuffles; an explicit set_epoch always wins (resuming replays that epoch exactly).
        if self._started and not self._epoch_set:
            self.epoch += 1
        self._started, self._epoch_set = True, False
        order_seq, aug_seq = np.random.SeedSequence([self.seed, self.epoch]).spawn(2)
        n = len(self.dataset)
        order = np.random.default_rng(order_seq).permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        batches = [order[i:min(i + self.batch_size, stop)] for i in range(0, stop, self.batch_size)]
        return batches, np.random.default_rng(aug_seq)

    def _load(self, index):
        """uint8 (B, H, W, C) images and int64 (B,) labels for a batch of indices."""
        data, targets = getattr(self.dataset, "data", None), getattr(self.dataset, "targets", None)
        if isinstance(data, np.ndarray) and isinstance(targets, np.ndarray):
            return data[index], targets[index].astype(np.int64)
        items = [self.dataset[int(i)] for i in index]
        return np.stack([np.asarray(img) for img, _ in items]), np.asarray([lab for _, lab in items], np.int64)

    def _make_batch(self, index, rng):
        images, labels = self._load(index)
        if images.ndim != 4:
            raise ValueError(f"DataLoader: expected images of shape (H, W, C), got a batch of shape {images.shape}")
        # Copy uint8 to the device (4x less traffic than float32), then convert and augment there.
        images = backend.to_device(np.ascontiguousarray(images), self.device)
        x = images.transpose(0, 3, 1, 2).astype(np.float32, order="C")  # (B, C, H, W)
        if images.dtype == np.uint8:
            x /= 255
        if self.transform is not None:
            x = self.transform(x, rng)
        return Tensor(x), Tensor(backend.to_device(labels, self.device))

    def _device_context(self):
        if self.device == "cpu":
            return contextlib.nullcontext()
        xp = backend.xp_for(self.device)  # the CuPy module, via the backend
        return xp.cuda.Device(int(self.device.split(":")[1]))

    def __iter__(self):
        batches, rng = self._plan()
        return self._iterate(batches, rng)

    def _iterate(self, batches, rng):
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
                        if stop.is_set() or not put(("batch", self._make_batch(index, rng))):
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
                f"drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch}, device={self.device!r})")
