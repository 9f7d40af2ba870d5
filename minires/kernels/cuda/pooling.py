"""CUDA fast path of pooling (being written)."""
