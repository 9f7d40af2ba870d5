"""CPU fast path of linear (being written)."""
