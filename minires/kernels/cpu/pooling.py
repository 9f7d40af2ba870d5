"""CPU fast path of pooling (being written)."""
