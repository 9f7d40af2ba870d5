"""PyTorch's torch.backends: the flags scripts set (cudnn.benchmark, cudnn.deterministic, tf32), accepted and
without effect, and the availability checks they make (mps.is_available() is False)."""
from . import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
