"""Data parallelism over the processes of a communicator: rank 0's weights to all, gradients averaged
in flat buckets, and a bitwise check that the processes' parameters agree.

Each process computes the gradient of the mean loss of its own part of the global batch; the
global batch's gradient is the sum over processes of share * gradient, share being the process's
fraction of the global batch (1/N for equal parts). GradientSync copies share * gradient into a
few flat buffers and sums each with one in-place Allreduce, then points every `.grad` at its slice
of the summed buffer: a handful of collectives per step instead of one per tensor.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .. import backend
from ..tensor import Tensor

# Bytes of gradients summed by one Allreduce. NOTE: the reduction runs after the whole backward (no
# overlap), so the size only trades per-call latency against message size. Measured on the 2-core
# machine (MPICH 5.0.2 over shared memory, 2 processes, benchmarks/bench_dist.py, three runs):
# ResNet-18's 42.6 MB of gradients reduce in 28-38 ms with 1, 4 or 16 MB buckets, and in 43-53 ms as
# one 64 MB message; ResNet-20's 1 MB is one bucket at any of these sizes. 4 MB also bounds the flat
# buffers' memory. (PyTorch DDP's 25 MB buckets are sized for overlapping the backward; on GPUs the
# per-call latency weighs more, see benchmarks/RESULTS.md.)
BUCKET_BYTES = 4 * 2**20


class ParametersDiverged(RuntimeError):
    """The processes of a data-parallel run hold different parameters (raised on every process)."""


def _tensors(model, buffers: bool):
    named = list(model.named_parameters())
    if buffers:
        named += [(name, b) for name, b in model.named_buffers() if b is not None]
    return named


def broadcast_parameters(model, comm, root: int = 0, buffers: bool = True) -> None:
    """Overwrite every parameter (and buffer) with root's, in place (optimizers keep their references)."""
    if comm.size == 1:
        return
    for _, t in _tensors(model, buffers):
        comm.broadcast_(t.array, root)


def broadcast_buffers(model, comm, root: int = 0) -> None:
    """Overwrite every buffer (batch-norm running statistics) with root's, in place."""
    if comm.size == 1:
        return
    for _, b in model.named_buffers():
        if b is not None:
            comm.broadcast_(b.array, root)


def digests(model, buffers: bool = False) -> list[tuple[str, str]]:
    """(name, 64-bit BLAKE2b of the bytes) of every parameter (and buffer) of model, in order."""
    out = []
    for name, t in _tensors(model, buffers):
        a = backend.to_numpy(t.array)
        a = a if a.flags.c_contiguous else np.array(a, order="C")
        out.append((name, hashlib.blake2b(memoryview(a).cast("B"), digest_size=8).hexdigest()))
    return out


def check_parameters_agree(model, comm, buffers: bool = False, when: str = "") -> None:
    """Raise ParametersDiverged on every process unless all processes hold bitwise equal parameters."""
    if comm.size == 1:
        return
    mine = digests(model, buffers)
    every = comm.allgather(mine)
    bad = [i for i in range(len(mine)) if len({d[i] for d in every}) > 1]
    if bad:
        name = mine[bad[0]][0]
        ranks = [r for r, d in enumerate(every) if d[bad[0]] != every[0][bad[0]]]
        exc = ParametersDiverged(
            f"the processes' parameters differ{' ' + when if when else ''}: {len(bad)} of {len(mine)} tensors, "
            f"first {name} (rank(s) {', '.join(map(str, ranks))} differ from rank 0); the processes no longer "
            f"train one model (different minires/NumPy builds or BLAS on the nodes?)")
        exc.all_ranks = True
        raise exc


class GradientSync:
    """Sum share * gradient over the processes of comm, one in-place Allreduce per flat bucket.

    Buckets hold parameters of one dtype and device, in the order given, up to bucket_bytes each
    (a larger parameter gets a bucket of its own). Buffers are allocated at the first call and
    reused; after a call every parameter's `.grad` is a view of its bucket, valid until the next.
    """

    def __init__(self, params, comm, bucket_bytes: int | None = None):
        cap = BUCKET_BYTES if bucket_bytes is None else bucket_bytes
        if not isinstance(cap, int) or cap < 1:
            raise ValueError(f"GradientSync: bucket_bytes must be a positive int, got {bucket_bytes!r}")
        self.comm, self.params = comm, [p for p in params if p.requires_grad]
        self.buckets: list[list] = []  # lists of parameters
        size, key = 0, None
        for p in self.params:
            nbytes = p.array.size * p.array.itemsize
            if not self.buckets or (p.dtype, p.device) != key or size + nbytes > cap:
                self.buckets.append([])
                size, key = 0, (p.dtype, p.device)
            self.buckets[-1].append(p)
            size += nbytes
        self._buffers: list = [None] * len(self.buckets)

    def bucket_bytes(self) -> list[int]:
        """The size of each bucket in bytes."""
        return [sum(p.array.size * p.array.itemsize for p in b) for b in self.buckets]

    def __call__(self, share: float = 1.0, extras=None):
        """Replace each gradient g by the sum over processes of share * g; `extras`, a list of device
        scalars (the step's loss, its correct count), are summed in the last bucket and returned
        (in that bucket's dtype). A parameter without a gradient counts as zeros and keeps none."""
        extras = [] if extras is None else list(extras)
        reduced = None
        for i, bucket in enumerate(self.buckets):
            last = i == len(self.buckets) - 1
            buf = self._buffer(i, bucket, len(extras) if last else 0)
            lo = 0
            for p in bucket:
                view = buf[lo:lo + p.array.size].reshape(p.shape)
                lo += p.array.size
                if p.grad is None:
                    view[...] = 0
                elif share == 1.0:
                    view[...] = p.grad.array
                else:
                    backend.get_array_module(view).multiply(p.grad.array, share, out=view)
            if last:
                for k, value in enumerate(extras):
                    buf[lo + k] = value
            self.comm.allreduce_(buf)
            lo = 0
            for p in bucket:
                if p.grad is not None:
                    p.grad = Tensor(buf[lo:lo + p.array.size].reshape(p.shape))
                lo += p.array.size
            if last:
                reduced = buf[lo:lo + len(extras)]
        if not self.buckets and extras:  # nothing to train: the extras alone
            xp = backend.get_array_module(extras[0])
            reduced = self.comm.allreduce_(xp.stack([xp.asarray(v, dtype=xp.float64) for v in extras]))
        return reduced

    def _buffer(self, i, bucket, n_extras):
        size = sum(p.array.size for p in bucket) + n_extras
        buf = self._buffers[i]
        if buf is None or buf.size != size:
            xp = backend.get_array_module(bucket[0].array)
            buf = self._buffers[i] = xp.empty(size, dtype=bucket[0].dtype)
        return buf

    def __repr__(self):
        sizes = ", ".join(f"{b / 2**20:.2f}" for b in self.bucket_bytes())
        return f"GradientSync({len(self.params)} parameters in {len(self.buckets)} buckets of [{sizes}] MB)"


__all__ = ["BUCKET_BYTES", "GradientSync", "ParametersDiverged", "broadcast_buffers", "broadcast_parameters",
           "check_parameters_agree", "digests"]
