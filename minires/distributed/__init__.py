"""Data-parallel training over MPI: `mpiexec -n N minires train ...` on cores, nodes or GPUs.

- comm: the processes of a run (world(): MPI through mpi4py, or a single process where every
  collective is a no-op), with errors agreed at start-up, MPI_Abort on a lone failure, a watchdog;
- nccl: the Allreduce of CuPy arrays through NCCL, its unique id sent over MPI;
- data_parallel: rank 0's weights to all, gradients summed in flat buckets, a bitwise agreement check;
- sync_batchnorm: SyncBatchNorm (statistics over the global batch) and convert_sync_batchnorm;
- launch: `--nproc` as mpiexec, one GPU per process, the check that all processes run the same options.
mpi4py is imported only under an MPI launcher (the `dist` extra: mpi4py and MPICH's wheel).
"""
from .comm import DEFAULT_TIMEOUT_S, MPIComm, MPIUnavailable, SingleProcess, launcher_env, world
from .data_parallel import (BUCKET_BYTES, GradientSync, ParametersDiverged, broadcast_buffers, broadcast_parameters,
                            check_parameters_agree, digests)
from .launch import check_same_run, cores_per_process, limit_blas_threads, local_device, mpiexec_command
from .nccl import NcclAllreduce
from .sync_batchnorm import SyncBatchNorm, SyncBatchNormFunction, convert_sync_batchnorm

__all__ = ["BUCKET_BYTES", "DEFAULT_TIMEOUT_S", "GradientSync", "MPIComm", "MPIUnavailable", "NcclAllreduce",
           "ParametersDiverged", "SingleProcess", "SyncBatchNorm", "SyncBatchNormFunction", "broadcast_buffers",
           "broadcast_parameters", "check_parameters_agree", "check_same_run", "convert_sync_batchnorm", "digests",
           "launcher_env", "limit_blas_threads", "local_device", "mpiexec_command", "cores_per_process", "world"]
