"""CIFAR-10 data: readers for the official batches and image folders, download, transforms, DataLoader."""
from . import transforms
from .cifar10 import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, CLASSES, find_layout
from .download import default_data_dir, download_cifar10, extract_archive
from .loader import DataLoader, TensorDataset
from .safe_pickle import UnsafePickleError
from .transforms import SampleRNG

__all__ = ["CIFAR10", "CIFAR10_MEAN", "CIFAR10_STD", "CLASSES", "DataLoader", "TensorDataset", "default_data_dir", "find_layout",
           "download_cifar10", "extract_archive", "transforms", "SampleRNG", "UnsafePickleError"]
