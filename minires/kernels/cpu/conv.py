"""CPU fast path of conv (being written)."""
