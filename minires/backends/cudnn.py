"""torch.backends.cudnn's flags: minires does not use cuDNN, so setting them has no effect.

minires's convolutions are its own (im2col + GEMM on NumPy or CuPy, or its CUDA kernels), with no
algorithm search to benchmark; on the CPU they are deterministic, and on a GPU `deterministic` does
not change which kernels run.
"""

benchmark = False  # no effect: there is no cuDNN algorithm search
deterministic = False  # no effect
enabled = True  # no effect
allow_tf32 = True  # no effect: minires computes in the dtype it is given


def is_available() -> bool:
    """False: minires does not use cuDNN."""
    return False


def version():
    """None: minires does not use cuDNN."""
    return None
