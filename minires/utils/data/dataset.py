"""PyTorch's datasets: the map-style Dataset and the IterableDataset, and the ones built from others."""
from __future__ import annotations

import bisect
import itertools
import math
import numbers
import warnings
from typing import Generic, Iterable, TypeVar

import numpy as np

from ... import creation

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: `dataset[i]` is sample i; subclasses define __getitem__ (and usually __len__)."""

    def __getitem__(self, index) -> T_co:
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Dataset must implement __getitem__")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A dataset read as a stream: subclasses define __iter__. In DataLoader workers each worker iterates
    its own copy; shard it with get_worker_info(), as in PyTorch."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of IterableDataset must implement __iter__")

    def __add__(self, other: "Dataset") -> "ChainDataset":
        return ChainDataset([self, other])


def _length(name: str, x) -> int:
    shape = getattr(x, "shape", None)
    if shape is None or not hasattr(x, "__getitem__"):
        raise TypeError(f"{name}: expected Tensors (or arrays), got {type(x).__name__}")
    if len(shape) == 0:
        raise ValueError(f"{name}: every tensor needs a first dimension to index samples along, got a 0-d tensor")
    return int(shape[0])


class TensorDataset(Dataset):
    """Sample i is tuple(t[i] for t in tensors); the tensors share their first dimension."""

    def __init__(self, *tensors):
        sizes = [_length("TensorDataset", t) for t in tensors]
        if len(set(sizes)) > 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions {sizes}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return _length("TensorDataset", self.tensors[0]) if self.tensors else 0


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list) -> list:
        """A batch of samples at once, through the dataset's own __getitems__ where it has one."""
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Map-style datasets one after another: indices run through the first, then the second, ..."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for i, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset):
                raise TypeError(f"ConcatDataset: dataset {i} is an IterableDataset ({type(d).__name__}); "
                                f"ConcatDataset takes map-style datasets only (use ChainDataset)")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise ValueError(f"ConcatDataset: absolute value of index {idx} should not exceed the length {n}")
            idx += n
        if idx >= n:
            raise IndexError(f"ConcatDataset: index {idx} is out of range for length {n}")
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[d][idx - (self.cumulative_sizes[d - 1] if d else 0)]


class ChainDataset(IterableDataset):
    """Iterable datasets one after another (what `iterable_a + iterable_b` gives)."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = datasets

    def __iter__(self):
        for i, d in enumerate(self.datasets):
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset: dataset {i} ({type(d).__name__}) is not an IterableDataset")
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


def _split_lengths(n: int, lengths) -> list[int]:
    """Integer lengths, or fractions summing to 1 turned into lengths as PyTorch does: floor(n * f) each,
    then the remainder handed out one by one from the first part on."""
    lengths = list(lengths)
    for i, v in enumerate(lengths):
        if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.number)):
            raise TypeError(f"random_split: lengths[{i}] must be an int or a fraction, got {v!r}")
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:
        for i, f in enumerate(lengths):
            if not 0 <= f <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {f}, not between 0 and 1")
        parts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(parts)):
            parts[i % len(parts)] += 1
        for i, p in enumerate(parts):
            if p == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this split will be empty",
                              stacklevel=3)
        return parts
    for i, v in enumerate(lengths):
        if int(v) != v or v < 0:
            raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing to 1, "
                             f"got {lengths}")
    parts = [int(v) for v in lengths]
    if sum(parts) != n:
        raise ValueError(f"random_split: sum of input lengths {parts} = {sum(parts)} does not equal the length "
                         f"of the dataset ({n})")
    return parts


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Disjoint random Subsets of the given lengths (or fractions of len(dataset)), drawn from `generator`."""
    parts = _split_lengths(len(dataset), lengths)
    order = creation.numpy_generator(generator).permutation(sum(parts)).tolist()
    ends = list(itertools.accumulate(parts))
    return [Subset(dataset, order[end - p:end]) for end, p in zip(ends, parts)]
