"""DistributedSampler: each process of a data-parallel run (minires.distributed) reads its own part."""
from __future__ import annotations

import math
import numbers
from typing import Iterator

import numpy as np

from ...distributed import launcher_env, world
from .sampler import Sampler


def _default_world() -> tuple[int, int]:
    """(num_replicas, rank) of this run: from minires.distributed.world() under an MPI launcher with several
    processes; a lone process (no launcher, or one that says size 1) is (1, 0) and MPI is never started."""
    rank, size = launcher_env()
    if size == 1 or (size is None and rank is None):
        return 1, 0
    comm = world()
    return comm.size, comm.rank


def _int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < low:
        raise ValueError(f"DistributedSampler: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class DistributedSampler(Sampler[int]):
    """Replica `rank` of `num_replicas` reads every num_replicas-th index of one (seed + epoch) order.

    As PyTorch's: without drop_last the order is padded with its own first indices to a multiple of
    num_replicas, so every replica reads num_samples indices; call set_epoch(e) before each epoch to
    reshuffle. num_replicas and rank default to minires.distributed.world()'s size and rank.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            size, own = _default_world()
            num_replicas = size if num_replicas is None else num_replicas
            rank = own if rank is None else rank
        self.num_replicas = _int("num_replicas", num_replicas, 1)
        if isinstance(rank, bool) or not isinstance(rank, (numbers.Integral, np.integer)) \
                or not 0 <= rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {self.num_replicas - 1}]")
        self.rank = int(rank)
        self.dataset = dataset
        self.epoch = 0
        self.shuffle = bool(shuffle)
        self.seed = _int("seed", seed, 0)
        self.drop_last = bool(drop_last)
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)  # = n // num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        else:
            indices = list(range(n))
        if self.drop_last:
            indices = indices[:self.total_size]
        elif indices:
            pad = self.total_size - len(indices)
            indices += (indices * math.ceil(pad / len(indices)))[:pad]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that the (seed + epoch) order of the next iteration comes from."""
        self.epoch = _int("epoch", epoch, 0)
