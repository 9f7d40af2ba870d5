"""torch.backends.cuda's switches (matmul.allow_tf32, ...): accepted, without effect (no TF32 paths in minires)."""


class _Flags:
    """A namespace of flags that scripts set and minires ignores."""

    def __init__(self, **flags):
        self.__dict__.update(flags)


matmul = _Flags(allow_tf32=False, allow_fp16_reduced_precision_reduction=True)


def is_built() -> bool:
    """Whether minires can run on CUDA at all: always True (through CuPy, when it is installed)."""
    return True
