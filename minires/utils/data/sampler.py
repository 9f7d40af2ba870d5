"""PyTorch's samplers: which indices a DataLoader reads, in which order, and how they group into batches.

Random samplers draw from `generator` (a minires.Generator, or NumPy's); without one, RandomSampler
draws a fresh seed from minires's global generator at each iteration, as PyTorch's does from torch's,
so `mr.manual_seed(s)` fixes every epoch's order.
"""
from __future__ import annotations

import itertools
import numbers
from typing import Generic, Iterator, Sized, TypeVar

import numpy as np

from ... import creation

T_co = TypeVar("T_co", covariant=True)
_CHUNK = 32  # RandomSampler(replacement=True) draws indices 32 at a time, as PyTorch's does


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value <= 0:
        raise ValueError(f"{owner}: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


def _boolean(owner: str, name: str, value, error=TypeError) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise error(f"{owner}: {name} should be a boolean value, but got {name}={value!r}")
    return bool(value)


def _seeded(generator) -> np.random.Generator:
    """The stream an iteration draws from: `generator`'s, or a fresh one seeded from minires's global generator."""
    if generator is not None:
        return creation.numpy_generator(generator)
    return np.random.default_rng(int(creation.numpy_generator(None).integers(0, 2**63)))


class Sampler(Generic[T_co]):
    """Base class: an iterable over dataset indices (or lists of them, for a batch sampler)."""

    def __init__(self, data_source: Sized | None = None) -> None:
        pass  # PyTorch accepts and ignores data_source here

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Sampler must implement __iter__")


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A random permutation of the indices (repeated to reach num_samples), or num_samples draws with replacement."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator=None) -> None:
        self.data_source = data_source
        self.replacement = _boolean("RandomSampler", "replacement", replacement)
        self._num_samples = num_samples
        self.generator = generator
        if generator is not None:
            creation.numpy_generator(generator)  # a bad type fails here, not at the first epoch
        if num_samples is not None:
            _positive_int("RandomSampler", "num_samples", num_samples)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        if n == 0:
            return
        rng = _seeded(self.generator)
        if self.replacement:
            for _ in range(self.num_samples // _CHUNK):
                yield from rng.integers(0, n, size=_CHUNK).tolist()
            yield from rng.integers(0, n, size=self.num_samples % _CHUNK).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from rng.permutation(n).tolist()
            yield from rng.permutation(n)[:self.num_samples % n].tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given indices in a random order (a fresh permutation each iteration)."""

    def __init__(self, indices, generator=None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        for i in creation.numpy_generator(self.generator).permutation(len(self.indices)).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """num_samples indices drawn with probabilities proportional to `weights` (with replacement by default)."""

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None) -> None:
        self.num_samples = _positive_int("WeightedRandomSampler", "num_samples", num_samples)
        self.replacement = _boolean("WeightedRandomSampler", "replacement", replacement, ValueError)
        w = weights.numpy() if hasattr(weights, "numpy") else weights
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"WeightedRandomSampler: weights should be a non-empty 1-D sequence, got shape "
                             f"{w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite and non-negative with a positive sum")
        if not self.replacement and self.num_samples > np.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw {self.num_samples} samples without replacement "
                             f"from {np.count_nonzero(w)} non-zero weights")
        self.weights = w
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        rng = creation.numpy_generator(self.generator)
        p = self.weights / self.weights.sum()
        yield from rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p).tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[list[int]]):
    """Lists of batch_size indices from `sampler`, in its order; the last one shorter unless drop_last."""

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        self.batch_size = _positive_int("BatchSampler", "batch_size", batch_size)
        self.drop_last = _boolean("BatchSampler", "drop_last", drop_last, ValueError)
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        it = iter(self.sampler)
        while True:
            batch = list(itertools.islice(it, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class _InfiniteConstantSampler(Sampler[None]):
    """None for ever: the 'indices' of an IterableDataset, whose order is the dataset's own."""

    def __iter__(self) -> Iterator[None]:
        while True:
            yield None
