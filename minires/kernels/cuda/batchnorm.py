"""CUDA fast path of batchnorm (being written)."""
