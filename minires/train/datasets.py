"""The CIFAR-10 splits and augmentation of a training run: optional subsets, seeded, and the transform pipelines."""
from __future__ import annotations

import numpy as np

from ..data import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, default_data_dir
from ..data import transforms as T


def _subset(dataset, limit, seed):
    """Keep `limit` examples chosen by a seeded permutation (image folders are sorted by class)."""
    if limit is None or limit >= len(dataset):
        return dataset
    keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit])
    dataset.data, dataset.targets = dataset.data[keep], dataset.targets[keep]
    return dataset


def load_datasets(data_dir, limit_train=None, limit_test=None, seed=0, train=True, cache=True):
    """(train set or None, test set): CIFAR10 from data_dir, or from the default dir (downloaded there)."""
    root, download = (data_dir, False) if data_dir is not None else (default_data_dir(), True)
    train_set = _subset(CIFAR10(root, train=True, download=download, cache=cache), limit_train, seed) if train else None
    test_set = _subset(CIFAR10(root, train=False, download=download, cache=cache), limit_test, seed + 1)
    return train_set, test_set


def _transforms(image_size: int, cutout: int, train: bool):
    steps = [T.RandomCrop(image_size, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip()] if train else []
    if train and cutout:
        steps.append(T.Cutout(cutout))
    steps.append(T.Normalize(CIFAR10_MEAN, CIFAR10_STD))
    return T.Compose(steps)
