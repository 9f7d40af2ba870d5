"""The processes of a run: one MPI communicator (mpi4py over COMM_WORLD), or a single process.

`world()` is what a program calls: under an MPI launcher with more than one process it returns an
MPIComm, else a SingleProcess on which every collective is a no-op, so the same code runs at N = 1.
The launcher is recognised by the variables it sets (MPICH/Intel MPI/Slurm PMI, Open MPI, PMIx,
MVAPICH), so a plain `minires train` never imports mpi4py or starts MPI.

Collectives on NumPy arrays go through MPI; on CuPy arrays through NCCL (minires.distributed.nccl),
its unique id broadcast over MPI: MPI stays the launcher and the control plane.

Failures: an error raised on one process cannot be seen by the others, which would wait in their
next collective for ever. So start-up work runs under `agree` (every process reports, all raise
together), a process failing later calls `fail` (message, then MPI_Abort: the launcher ends every
process), and a watchdog thread ends the job when one collective has waited `timeout` seconds (a
process lost without its launcher noticing).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback

import numpy as np

from .. import backend
from .nccl import NcclAllreduce

# Variables by which MPI launchers tell a process its rank and the job's size.
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
# An MPI Allreduce of gradients takes milliseconds; rank 0's epoch-end writes (checkpoint, plots)
# seconds. Five minutes in one collective means a process is gone.
DEFAULT_TIMEOUT_S = 300.0
# NOTE: seconds between printing the message that ends a job and MPI_Abort. Hydra stops forwarding a
# process's output when another aborts; without the pause a CI run lost the whole message.
FORWARD_S = 0.5


class MPIUnavailable(RuntimeError):
    """Launched by mpiexec with several processes, but mpi4py (or its MPI library) cannot be imported."""


def launcher_env() -> tuple[int | None, int | None]:
    """(rank, size) as an MPI launcher's environment gives them; None where it says nothing."""
    def first(names):
        for name in names:
            value = os.environ.get(name, "")
            if value.strip().isdigit():
                return int(value)
        return None
    return first(RANK_VARS), first(SIZE_VARS)


_world = None  # the communicator of this process, made at the first world() call


def world(timeout: float | None = None):
    """The processes of this run (made once): an MPIComm under an MPI launcher with N > 1, else a
    SingleProcess. `timeout` (seconds one collective may wait; None keeps the current one) sets the watchdog."""
    global _world
    if _world is None:
        _world = _make_world()
    if timeout is not None and isinstance(_world, MPIComm):
        _world.set_timeout(timeout)
    return _world


def _make_world():
    rank, size = launcher_env()
    if rank is None and size is None:
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError as exc:  # mpi4py missing, or its MPI library
        if size == 1:
            return SingleProcess()
        raise MPIUnavailable(f"started by an MPI launcher ({size or 'several'} processes), but mpi4py cannot be "
                             f"imported ({exc}): pip install 'minires[dist]', or on a cluster mpi4py built "
                             f"against the site's MPI") from None
    if MPI.COMM_WORLD.Get_size() == 1:
        if size is not None and size > 1:  # each process would train alone and write the same files
            library = MPI.Get_library_version().splitlines()[0].strip()
            raise MPIUnavailable(f"the launcher started {size} processes but mpi4py's MPI sees one: mpi4py uses "
                                 f"another MPI than the mpiexec that started it ({library!r}); start with that "
                                 f"MPI's mpiexec, or install mpi4py built against the site's MPI")
        return SingleProcess()
    return MPIComm(MPI)


# The kinds of error `agree` raises again on every process (any other kind comes back as RuntimeError).
_KINDS = {k.__name__: k for k in (FileNotFoundError, ValueError, TypeError, RuntimeError)}


def _nothing():
    return None


def _kind(exc: BaseException) -> str:
    return next((k.__name__ for k in type(exc).__mro__ if k.__name__ in _KINDS), "RuntimeError")


class SingleProcess:
    """One process: rank 0 of 1. Every collective returns its input; agree runs fn and raises as it does."""

    rank, size, local_rank, local_size = 0, 1, 0, 1
    where = ""  # what the program is doing (for error messages), set by the Trainer

    def allreduce_(self, a):
        """Sum `a` (a NumPy or CuPy array) over the processes, in place; returns a."""
        return a

    def broadcast_(self, a, root: int = 0):
        """Overwrite `a` with root's array, in place; returns a."""
        return a

    def bcast(self, obj, root: int = 0):
        """root's Python object, on every process."""
        return obj

    def allgather(self, obj) -> list:
        """[every process's obj], in rank order."""
        return [obj]

    def barrier(self) -> None:
        pass

    def agree(self, fn, root_only: bool = False):
        """fn() on every process (root_only: on rank 0, its result broadcast); an error on any raises on all."""
        return fn()

    def root_first(self, fn):
        """fn() on rank 0, then on the others (after it: a download, a cache); errors as agree."""
        return fn()

    def fail(self, exc: BaseException | None, code: int = 1, note: str = "", detail: bool = False) -> None:
        """End the whole job after a failure of this process alone (one process: nothing to end)."""

    def __repr__(self):
        return "SingleProcess()"


class MPIComm(SingleProcess):
    """COMM_WORLD of mpi4py: rank, size, the node-local rank and size, collectives with a watchdog."""

    def __init__(self, mpi, comm=None, timeout: float | None = DEFAULT_TIMEOUT_S):
        self.MPI = mpi
        self.comm = comm if comm is not None else mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(mpi.COMM_TYPE_SHARED)  # the processes sharing this node's memory
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.timeout = None
        self.set_timeout(timeout)
        self._busy = None  # (collective, start time) while one runs
        self._device = None  # NCCL communicator, made at the first CuPy collective
        self._watchdog = None

    def set_timeout(self, timeout: float | None) -> None:
        """Seconds one collective may wait before the watchdog ends the job (None: no watchdog)."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise ValueError(f"dist-timeout must be a number of seconds > 0, got {timeout!r}")
        self.timeout = timeout

    # ---- collectives ------------------------------------------------------------------------------
    def allreduce_(self, a):
        if not isinstance(a, np.ndarray):  # a CuPy array: NCCL, on its GPU
            if self._device is None:
                self._device = NcclAllreduce.create(self, device=a.device.id)
            with self._watch("NCCL allReduce"):
                return self._device.allreduce_(a)
        if not a.flags.c_contiguous:
            raise ValueError("allreduce_: needs a C-contiguous array (the flat gradient buckets are)")
        with self._watch("Allreduce"):
            self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
        return a

    def broadcast_(self, a, root: int = 0):
        host = a if isinstance(a, np.ndarray) else backend.to_numpy(a)
        # NOTE: not np.ascontiguousarray, which turns a 0-d array (num_batches_tracked) into shape (1,)
        buf = host if host.flags.c_contiguous else np.array(host, order="C")
        with self._watch("Bcast"):
            self.comm.Bcast(buf, root=root)
        if buf is not a:
            a[...] = buf if isinstance(a, np.ndarray) else backend.to_device(buf, backend.device_of(a))
        return a

    def bcast(self, obj, root: int = 0):
        with self._watch("bcast"):
            return self.comm.bcast(obj, root=root)

    def allgather(self, obj) -> list:
        with self._watch("allgather"):
            return self.comm.allgather(obj)

    def barrier(self) -> None:
        with self._watch("Barrier"):
            self.comm.Barrier()

    # ---- agreeing on errors -----------------------------------------------------------------------
    def agree(self, fn, root_only: bool = False):
        status, result = None, None
        if not root_only or self.rank == 0:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 -- every error is reported to the other processes
                status = (_kind(exc), str(exc))
        if root_only:
            status, result = self.bcast((status, result) if self.rank == 0 else None)
            failed = [(0, status)] if status else []
        else:
            failed = [(r, s) for r, s in enumerate(self.allgather(status)) if s]
        if not failed:
            return result
        messages = {message for _, (_, message) in failed}
        if len(messages) == 1 and (root_only or len(failed) == self.size):
            message = messages.pop()
        else:
            message = "; ".join(f"on rank {r}: {m}" for r, (_, m) in failed)
        exc = _KINDS[failed[0][1][0]](message)
        exc.all_ranks = True  # every process raises it: no MPI_Abort needed, rank 0 reports it
        raise exc

    def root_first(self, fn):
        # NOTE: no watchdog while the others wait for rank 0: its part may be a 170 MB download.
        timeout, self.timeout = self.timeout, None
        try:
            first = self.agree(fn if self.rank == 0 else _nothing)
            later = self.agree(fn if self.rank != 0 else _nothing)
        finally:
            self.timeout = timeout
        return first if self.rank == 0 else later

    def fail(self, exc: BaseException | None, code: int = 1, note: str = "", detail: bool = False) -> None:
        """Print this process's error (rank named; with its traceback if `detail`) and MPI_Abort: the
        launcher ends every process. exc None: end them without a message (an interrupt)."""
        if exc is not None:
            # NOTE: the one-line message first: the launcher may stop forwarding output as soon as a process
            # aborts, and a cut should fall on the traceback, not on the line that names the rank.
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            where = f" ({self.where})" if self.where else ""
            print(f"minires: error on rank {self.rank} of {self.size}{where}: {text}; ending all {self.size} "
                  f"processes{'; ' + note if note else ''}", file=sys.stderr, flush=True)
            if detail:
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
                sys.stderr.flush()
            time.sleep(FORWARD_S)
        self.comm.Abort(code)

    # ---- the watchdog -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _watch(self, what: str):
        if self.timeout is None:
            yield
            return
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch_loop, name="minires-watchdog", daemon=True)
            self._watchdog.start()
        self._busy = (what, time.monotonic())
        try:
            yield
        finally:
            self._busy = None

    def _watch_loop(self) -> None:
        while True:
            timeout = self.timeout
            time.sleep(1.0 if timeout is None else min(1.0, timeout / 4))
            busy = self._busy
            if timeout is not None and busy is not None and time.monotonic() - busy[1] > timeout:
                where = f" ({self.where})" if self.where else ""
                print(f"minires: rank {self.rank} of {self.size} waited {timeout:g} s in {busy[0]}{where}: "
                      f"another process died or hangs; ending the job (--dist-timeout sets this wait)",
                      file=sys.stderr, flush=True)
                time.sleep(FORWARD_S)
                self.comm.Abort(1)  # MPI_THREAD_MULTIPLE, mpi4py's default: callable from this thread
                os._exit(1)  # an MPI whose Abort returned: end this process at least

    def __repr__(self):
        return f"MPIComm(rank={self.rank}, size={self.size}, local_rank={self.local_rank})"


__all__ = ["DEFAULT_TIMEOUT_S", "MPIComm", "MPIUnavailable", "SingleProcess", "launcher_env", "world"]
