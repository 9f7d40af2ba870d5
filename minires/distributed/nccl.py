"""Allreduce of CuPy arrays through NCCL (cupy.cuda.nccl), with the communicator set up over MPI.

Rank 0 draws NCCL's unique id, MPI broadcasts it, and every process joins one NCCL communicator on
its own GPU (ncclCommInitRank). The Allreduce then runs on the current CUDA stream, ordered after
the backward kernels that wrote the gradients and before the optimizer's: no host synchronisation.

The NCCL module and the stream are parameters, so that the set-up and the calls (unique id,
dtype codes, pointers, counts) are tested on the CPU with a stand-in that reduces host memory.
"""
from __future__ import annotations

import contextlib
import importlib

from .. import backend

# NumPy dtype name -> the name of NCCL's datatype constant in cupy.cuda.nccl
NCCL_DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8"}


def nccl_module():
    """cupy.cuda.nccl, or a RuntimeError saying how to get NCCL."""
    cp = backend.cupy_module()
    module, reason = getattr(cp.cuda, "nccl", None), "not built"
    if module is None:
        try:
            module = importlib.import_module(f"{cp.__name__}.cuda.nccl")
        except ImportError as exc:
            reason = str(exc)
    if module is None or not getattr(module, "available", True):
        raise RuntimeError(f"data-parallel training on GPUs needs NCCL, and CuPy finds none ({reason}): "
                           f"pip install nvidia-nccl-cu12 (or -cu13 for CUDA 13)")
    return module


class NcclAllreduce:
    """In-place sum of device arrays over the processes of one NCCL communicator."""

    def __init__(self, nccl, communicator, stream_ptr, device_context=contextlib.nullcontext):
        self.nccl, self.communicator, self.stream_ptr = nccl, communicator, stream_ptr
        self.device_context = device_context  # makes the communicator's GPU current around a call

    @classmethod
    def create(cls, comm, nccl=None, stream_ptr=None, device: int | None = None):
        """The NCCL communicator of the processes of `comm` (an MPIComm) on GPU `device` (None: the
        current one); rank 0's unique id goes to the others over MPI."""
        nccl = nccl if nccl is not None else nccl_module()
        uid = nccl.get_unique_id() if comm.rank == 0 else None
        uid = comm.bcast(uid, root=0)
        context = contextlib.nullcontext
        if device is not None:
            cp = backend.cupy_module()
            context = lambda: cp.cuda.Device(device)  # noqa: E731
        with context():  # ncclCommInitRank binds the communicator to the current GPU
            communicator = nccl.NcclCommunicator(comm.size, uid, comm.rank)
        if stream_ptr is None:
            cp = backend.cupy_module()
            stream_ptr = lambda: cp.cuda.get_current_stream().ptr  # noqa: E731
        return cls(nccl, communicator, stream_ptr, context)

    def allreduce_(self, a):
        """Sum the contiguous device array `a` over the processes, in place, on the current stream."""
        name = NCCL_DTYPES.get(a.dtype.name)
        if name is None:
            raise TypeError(f"allreduce_: NCCL reduces {', '.join(NCCL_DTYPES)}, got dtype {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError("allreduce_: needs a C-contiguous array (the flat gradient buckets are)")
        ptr = a.data.ptr
        with self.device_context():
            self.communicator.allReduce(ptr, ptr, a.size, getattr(self.nccl, name), self.nccl.NCCL_SUM,
                                        self.stream_ptr())
        return a


__all__ = ["NCCL_DTYPES", "NcclAllreduce", "nccl_module"]
