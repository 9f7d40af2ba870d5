"""CPU fast path of batchnorm (being written)."""
