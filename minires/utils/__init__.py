"""PyTorch's torch.utils for minires: `minires.utils.data` (datasets, samplers, collation, DataLoader)."""
from . import data

__all__ = ["data"]
