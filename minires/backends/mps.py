"""torch.backends.mps: Apple's GPUs are not a minires device."""


def is_available() -> bool:
    """False: minires runs on the CPU and on CUDA GPUs only."""
    return False


def is_built() -> bool:
    return False
