"""DataLoader, PyTorch's torch.utils.data.DataLoader: samples from a dataset, in batches, in worker processes.

Order and seeds as PyTorch's. Each iterator draws one base seed from `generator` (minires's global generator
when None); a RandomSampler without a generator then draws its own seed likewise, at its first index. Worker
i seeds minires's global generator and Python's `random` with base_seed + i (NumPy's legacy global generator
from both), runs minires's kernels on one thread, then calls worker_init_fn(i). Batch k is made by worker
k % num_workers and batches come out in sampler order, so one `mr.manual_seed` gives one sequence of batches,
and a deterministic dataset gives the same batches with any num_workers.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.context
import numbers
import os
import warnings

import numpy as np

from ... import creation
from .collate import default_collate, default_convert
from .dataset import IterableDataset
from .fetch import make_fetcher
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _InfiniteConstantSampler
from .worker_pool import MultiProcessIter, draw_base_seed

# Set once in __init__ and fixed after, as in PyTorch (the iterator and len() depend on them).
_FIXED = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"DataLoader: {name} must be an int, got {value!r}")
    return int(value)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class _SingleProcessIter:
    """num_workers=0: the main process fetches each batch when it is asked for."""

    def __init__(self, loader):
        self._loader = loader
        self._sampler_iter = iter(loader._index_sampler)
        self._base_seed = draw_base_seed(loader.generator)  # drawn as with workers, so the generator moves alike
        self._fetcher = make_fetcher(loader._iterable_kind, loader.dataset, loader._auto_collation,
                                     loader.collate_fn, loader.drop_last)

    def __iter__(self):
        return self

    def __next__(self):
        index = next(self._sampler_iter)  # StopIteration ends the epoch
        return self._fetcher.fetch(index)

    def __len__(self):
        return len(self._loader)


class DataLoader:
    """Batches of samples from `dataset`, made in the main process (num_workers=0) or in worker processes.

    As PyTorch's, with its defaults and argument checks. batch_size=None turns batching off (each sample
    goes through collate_fn, by default default_convert). shuffle=True draws a new order every epoch (see
    the module note for the seeds). num_workers > 0 starts processes by `multiprocessing_context` (fork
    on Linux by default, else spawn), each making whole batches with prefetch_factor (default 2) batches
    in flight per worker; persistent_workers keeps them between epochs. `timeout` (seconds, 0 for none)
    bounds the wait for one batch. pin_memory and pin_memory_device are accepted and have no effect:
    batches stay in ordinary host memory, and `.to("cuda")` copies them as usual. in_order is accepted;
    batches always come in sampler order.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None, multiprocessing_context=None,
                 generator=None, *, prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True):
        num_workers = _count("num_workers", num_workers)
        if num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative (got {num_workers}); "
                             f"use num_workers=0 to disable multiprocessing")
        if not isinstance(timeout, (numbers.Real, np.number)) or isinstance(timeout, bool) or not timeout >= 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative (seconds), got {timeout!r}")
        if num_workers == 0 and timeout > 0:  # PyTorch fails at the first iteration (an assertion)
            raise ValueError(f"DataLoader: timeout={timeout} applies to worker processes only: it needs "
                             f"num_workers > 0")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing: "
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and _count("prefetch_factor", prefetch_factor) < 1:
            raise ValueError(f"DataLoader: prefetch_factor option should be a positive number of batches per "
                             f"worker, got {prefetch_factor}")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if generator is not None:
            creation.numpy_generator(generator)  # a generator of the wrong type fails here, not at the first epoch
        for name, fn in (("collate_fn", collate_fn), ("worker_init_fn", worker_init_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"DataLoader: {name} must be callable, got {type(fn).__name__}")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = None if prefetch_factor is None else int(prefetch_factor)
        self.pin_memory = bool(pin_memory)
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.in_order = bool(in_order)
        self._iterable_kind = isinstance(dataset, IterableDataset)

        if self._iterable_kind:
            # An IterableDataset decides its own order: shuffling and samplers make no sense for it.
            if shuffle not in (False, None):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                                 f"shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, but got "
                                 f"sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                 "sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually exclusive "
                             "with drop_last")
        if sampler is None:
            if self._iterable_kind:
                sampler = _InfiniteConstantSampler()
            else:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self._auto_collation else default_convert)
        self.persistent_workers = bool(persistent_workers)
        self.multiprocessing_context = multiprocessing_context
        self._iterator = None
        self._initialized = True
        if self.num_workers > _usable_cores():
            warnings.warn(f"DataLoader will create {self.num_workers} worker processes, more than the "
                          f"{_usable_cores()} cores this process may use: they would compete for the cores and run "
                          f"slower, not faster; use num_workers <= {_usable_cores()}", stacklevel=2)

    def __setattr__(self, name, value):
        if name in _FIXED and self.__dict__.get("_initialized"):
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def multiprocessing_context(self):
        return self._multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, context):
        if context is not None:
            if self.num_workers == 0:
                raise ValueError(f"DataLoader: multiprocessing_context can only be used with multi-process loading "
                                 f"(num_workers > 0), but got num_workers={self.num_workers}")
            if isinstance(context, str):
                methods = multiprocessing.get_all_start_methods()
                if context not in methods:
                    raise ValueError(f"DataLoader: multiprocessing_context option should specify a valid start "
                                     f"method in {methods!r}, but got multiprocessing_context={context!r}")
                context = multiprocessing.get_context(context)
            if not isinstance(context, multiprocessing.context.BaseContext):
                raise TypeError(f"DataLoader: multiprocessing_context option must be a valid context object or a "
                                f"string specifying the start method, but got {context!r}")
        self._multiprocessing_context = context

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        """What the iterator draws from: batches of indices when batching, single indices otherwise."""
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        """A new iterator over the batches (with persistent workers, the same one restarted)."""
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        if not self.persistent_workers:
            return MultiProcessIter(self)
        if self._iterator is None or self._iterator._closed:
            self._iterator = MultiProcessIter(self)
        else:
            self._iterator._reset(self)
        return self._iterator

    def __len__(self) -> int:
        if self._iterable_kind:
            n = len(self.dataset)  # a TypeError if the IterableDataset has no __len__, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)
