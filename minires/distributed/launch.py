"""Starting a data-parallel run: `minires train --nproc N` as `mpiexec -n N`, one GPU and a share
of the cores per process, and the start-up check that every process runs the same thing."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys

from .. import backend


def find_mpiexec() -> str | None:
    """mpiexec on PATH, or beside this Python (a virtual environment not activated, the mpich wheel)."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return shutil.which("mpiexec") or (beside if os.access(beside, os.X_OK) else None)


def strip_nproc(argv: list[str]) -> list[str]:
    """argv without its `--nproc N` / `--nproc=N`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def mpiexec_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs `minires <argv>` (without --nproc) on nproc processes; FileNotFoundError
    when no mpiexec is installed."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise FileNotFoundError("--nproc: no mpiexec found on PATH or beside this Python: pip install "
                                "'minires[dist]' (MPICH's), or load your site's MPI and start "
                                "`mpiexec -n N minires train ...` yourself")
    return [mpiexec, "-n", str(nproc), sys.executable, "-m", "minires", *strip_nproc(argv)]


def options_digest(options: dict) -> str:
    """A hash of a run's options (JSON with sorted keys)."""
    text = json.dumps(options, sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def check_same_run(comm, options: dict, what: str = "options") -> None:
    """ValueError on every process unless all processes hold the same options (rank 0's hash is the
    reference; the message names the keys that differ and the ranks)."""
    if comm.size == 1:
        return
    mine = options_digest(options)
    reference = comm.bcast(mine, root=0)
    differs = comm.allgather(mine != reference)
    if not any(differs):
        return
    every = comm.allgather(options)  # only on a mismatch: name what differs
    ranks = [r for r, d in enumerate(differs) if d]
    keys = sorted({k for r in ranks for k in set(every[0]) | set(every[r]) if every[0].get(k) != every[r].get(k)})
    detail = "; ".join(f"{k}: rank 0 has {every[0].get(k)!r}, rank {r} {every[r].get(k)!r}"
                       for k in keys[:4] for r in ranks[:1])
    exc = ValueError(f"the processes do not run the same {what} (rank(s) {', '.join(map(str, ranks))} differ "
                     f"from rank 0): {detail}; start every process with the same command and minires version")
    exc.all_ranks = True
    raise exc


def local_device(device: str, comm) -> str:
    """`cuda` becomes this process's GPU on its node (cuda:LOCAL_RANK); other devices stay as given."""
    if comm.size == 1 or not isinstance(device, str) or device.strip().lower() != "cuda":
        return device
    count = int(backend.cupy_module().cuda.runtime.getDeviceCount())
    if comm.local_size > count:
        raise ValueError(f"{comm.local_size} processes on this node share {count} GPU(s); NCCL needs one GPU per "
                         f"process: start at most {count} processes per node")
    return f"cuda:{comm.local_rank}"


def cores_per_process(comm) -> int:
    """This process's share of the node's cores: the cores it may run on, split between the processes
    on its node (unless the launcher bound it to its own cores already)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if usable < (os.cpu_count() or usable):  # bound by the launcher (mpiexec --bind-to ...): all its own
        return usable
    return max(1, usable // comm.local_size)


def limit_blas_threads(n: int) -> bool:
    """BLAS at n threads in this process (threadpoolctl), unless OMP/OPENBLAS/MKL_NUM_THREADS say otherwise.

    NOTE: minires.parallel leaves BLAS its own threads when minires runs one thread; with one thread
    per process and OpenBLAS's default of one per core, 2 processes on 2 cores ran 4 spinning BLAS
    threads: resnet20 training fell from 159 to 37 img/s (measured, minires train, mpiexec -n 2)."""
    if any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")):
        return False
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=n, user_api="blas")
    return True


__all__ = ["check_same_run", "find_mpiexec", "local_device", "mpiexec_command", "options_digest",
           "strip_nproc", "cores_per_process", "limit_blas_threads"]
