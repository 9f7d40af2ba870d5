"""CUDA fast path of activation (being written)."""
