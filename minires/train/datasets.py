"""The CIFAR-10 splits of a training run: optional seeded subsets, and each process's part."""
from __future__ import annotations

import copy
import os

import numpy as np

from ..data import CIFAR10, default_data_dir, find_layout
from ..data.cifar10 import missing_data_message


def subset(dataset, limit, seed):
    """Keep `limit` examples chosen by a seeded permutation (image folders are sorted by class), as
    `minires train --limit-train/--limit-test` do (the test split with seed + 1)."""
    if limit is None or limit >= len(dataset):
        return dataset
    keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit])
    dataset.data, dataset.targets = dataset.data[keep], dataset.targets[keep]
    return dataset




def load_datasets(data_dir, limit_train=None, limit_test=None, seed=0, train=True, cache=True):
    """(train set or None, test set): CIFAR10 from data_dir, or from the default dir (downloaded there).

    A data_dir without a CIFAR-10 copy is a FileNotFoundError worded for the command line (--data)."""
    root, download = (data_dir, False) if data_dir is not None else (default_data_dir(), True)
    where = None if data_dir is None else os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    if where is not None and find_layout(where) is None:
        raise FileNotFoundError(missing_data_message(where, f"--data {data_dir}", lambda f: f"--data {f}"))
    train_set = subset(CIFAR10(root, train=True, download=download, cache=cache), limit_train, seed) if train else None
    test_set = subset(CIFAR10(root, train=False, download=download, cache=cache), limit_test, seed + 1)
    return train_set, test_set


def shard(dataset, rank: int, size: int):
    """The rank-th of `size` contiguous parts of dataset (a shallow copy; part sizes differ by one at most),
    so that the parts in rank order are the data set in order."""
    if size == 1:
        return dataset
    n = len(dataset)
    lo, hi = n * rank // size, n * (rank + 1) // size
    part = copy.copy(dataset)
    part.data, part.targets = dataset.data[lo:hi], dataset.targets[lo:hi]
    return part


def check_split(config, n_train: int, nproc: int, resumed: bool = False, drop_last: bool = False) -> None:
    """ValueError unless every process gets a non-empty, equal part of every global batch."""
    if nproc == 1:
        return
    if n_train < nproc:
        raise ValueError(f"{nproc} processes for {n_train} training image(s): every process needs images of every "
                         f"batch, so use at most {n_train} processes (--nproc) or more data (--limit-train)")
    if config.batch_size % nproc:
        whose = " (the resumed run's, from its checkpoint)" if resumed else ""
        raise ValueError(f"--batch-size {config.batch_size}{whose} does not split over {nproc} processes: the global "
                         f"batch is shared out equally, so it must be a multiple of the process count")
    rest = 0 if drop_last else n_train % config.batch_size  # a dropped last batch is no one's
    if 0 < rest < nproc:
        raise ValueError(f"the last batch of each epoch holds {rest} of the {n_train} training images, fewer than the "
                         f"{nproc} processes: choose --batch-size or --limit-train so that this remainder is 0 "
                         f"or at least {nproc}")

