"""CUDA fast path of conv (being written)."""
