"""PyTorch's torch.utils.data: datasets, samplers, default_collate and the multi-process DataLoader.

`from minires.utils.data import DataLoader, Dataset` in a PyTorch script (after the rewrite of its imports)
gets PyTorch's classes, names, defaults and order of batches. minires's own batched loader for the Trainer
is minires.data.DataLoader (whole-batch augmentation on the device); this one runs per-sample work, such as
minires.vision.transforms on PIL images, in worker processes.
"""
from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from .distributed import DistributedSampler
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)
from .worker import WorkerInfo, get_worker_info

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
           "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert",
           "get_worker_info", "random_split"]
