"""CPU fast path of activation (being written)."""
