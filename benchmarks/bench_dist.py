"""Data-parallel figures (minires.distributed): what N processes buy here, and what they would on GPUs.

    python benchmarks/bench_dist.py                        # everything (~5 minutes on 2 cores)
    python benchmarks/bench_dist.py --trainer-images 0     # without the `minires train` rounds
    python benchmarks/bench_dist.py --rounds 5 --steps 8   # more repeats

1. Throughput of a resnet20 training step (global batch 128, synthetic CIFAR-size data): one
   process with 2 threads against 2 processes (mpiexec -n 2) with one thread each
   (MINIRES_NUM_THREADS=1), each round in fresh processes, the two in turns; median over rounds.
   The 2-process step includes the gradient Allreduce (and any wait for the slower process).
   1b. The same through `minires train` (one process with its defaults, and --nproc 2): data
   loading and augmentation included, as a user sees it.
2. Allreduce time and gradient bytes per step for resnet20 and resnet18 (small-input stem), with
   the bucket sizes GradientSync would use (BUCKET_BYTES) and a sweep of others; median of repeats.
3. On paper, for GPUs: ring Allreduce time 2(N-1)/N * bytes / bandwidth for 8 GPUs on NVLink and for
   k nodes x 8 GPUs over InfiniBand, against assumed step times (no GPU ran: the bandwidths and the
   step times are assumptions, stated in the table), the scaling efficiency that follows with and
   without overlapping the Allreduce with the backward pass.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's minires first
from minires.bench.common import cpu_steal, header, markdown_table, steal_percent  # noqa: E402

HERE = os.path.abspath(__file__)
MB = 2**20


# ---- workers: one process of a measurement -------------------------------------------------------------

def worker_throughput(model_name: str, batch: int, steps: int, warmup: int) -> None:
    """Time training steps of model_name at global batch `batch` over this job's processes (rank 0 prints)."""
    import minires as mr
    import minires.functional as F
    from minires import distributed, models, optim, parallel
    from minires.train import train_step
    comm = distributed.world()
    mr.manual_seed(0)
    model = models.get(model_name, num_classes=10, **({"small_input": True} if model_name == "resnet18" else {}))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rng = np.random.default_rng(comm.rank)
    n = batch // comm.size
    x = mr.tensor(rng.standard_normal((n, 3, 32, 32)).astype(np.float32))
    y = mr.tensor(rng.integers(0, 10, n))
    sync, sync_times = None, []
    if comm.size > 1:
        inner = distributed.GradientSync(list(model.parameters()), comm)

        def sync(share, extras):
            t = time.perf_counter()
            out = inner(share, extras)
            sync_times.append(time.perf_counter() - t)
            return out
    times = []
    with parallel.hold_blas():
        for i in range(warmup + steps):
            comm.barrier()
            t = time.perf_counter()
            train_step(model, F.cross_entropy, opt, x, y, sync=sync, share=n / batch)
            times.append(time.perf_counter() - t)
    step = statistics.median(times[warmup:])
    if comm.rank == 0:
        print(json.dumps({"img_s": batch / step, "step_ms": 1e3 * step, "threads": parallel.get_num_threads(),
                          "sync_ms": 1e3 * statistics.median(sync_times[warmup:]) if sync_times else 0.0}))


def worker_allreduce(repeats: int) -> None:
    """Median time of GradientSync (every bucket's Allreduce) for resnet20/resnet18 gradients, per bucket size."""
    import minires as mr
    from minires import distributed, models
    comm = distributed.world()
    rows = []
    for name in ("resnet20", "resnet18"):
        model = models.get(name, num_classes=10, **({"small_input": True} if name == "resnet18" else {}))
        params = list(model.parameters())
        rng = np.random.default_rng(comm.rank)
        nbytes = sum(p.array.nbytes for p in params)
        for bucket in (distributed.BUCKET_BYTES, 1 * MB, 16 * MB, 64 * MB):
            sync = distributed.GradientSync(params, comm, bucket_bytes=bucket)
            times = []
            for i in range(repeats + 2):
                for p in params:
                    p.grad = mr.tensor(rng.standard_normal(p.shape).astype(np.float32))
                comm.barrier()
                t = time.perf_counter()
                sync(1.0 / comm.size, [np.float64(1.0), np.float64(2.0)])
                times.append(time.perf_counter() - t)
            worst = comm.allgather(statistics.median(times[2:]))  # the slower process's median
            rows.append({"model": name, "params": sum(p.array.size for p in params), "mb": nbytes / MB,
                         "bucket_mb": bucket / MB, "buckets": len(sync.buckets), "ms": 1e3 * max(worst),
                         "default": bucket == distributed.BUCKET_BYTES})
    if comm.rank == 0:
        print(json.dumps(rows))


# ---- the driver ---------------------------------------------------------------------------------------------

def run(cmd, env_extra, blas_env: bool = True, parse: bool = True):
    """Run cmd (this checkout's minires; BLAS at one thread by its variables unless not blas_env);
    the last JSON line it prints, or its stdout."""
    env = dict(os.environ, PYTHONPATH=ROOT, **env_extra)
    if blas_env:
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    if not parse:
        return r.stdout
    return json.loads([line for line in r.stdout.splitlines() if line.startswith(("{", "["))][-1])


def write_cifar_bin(folder: str, n_train: int, n_test: int) -> None:
    """A CIFAR-10 binary-batch folder of random images (throughput does not depend on the pixels)."""
    rng = np.random.default_rng(0)
    d = os.path.join(folder, "cifar-10-batches-bin")
    os.makedirs(d)
    per = -(-n_train // 5)
    for name, n in [(f"data_batch_{i}", per) for i in range(1, 6)] + [("test_batch", n_test)]:
        records = rng.integers(0, 256, (n, 1 + 3 * 32 * 32), dtype=np.uint8)
        records[:, 0] %= 10
        records.tofile(os.path.join(d, name + ".bin"))


def trainer_throughput(args, data: str) -> list:
    """`minires train` itself (data loading, augmentation, evaluation excluded from img/s): one process
    with the defaults against `--nproc 2`, in turns; the epoch's img/s as the Trainer reports it."""
    cmd = [sys.executable, "-m", "minires", "train", "--model", "resnet20", "--data", data, "--epochs", "1",
           "--limit-train", str(args.trainer_images), "--limit-test", "100", "--no-progress", "--overwrite",
           "--batch-size", str(args.batch), "--out"]
    results = {"minires train (1 process, default threads)": [], "minires train --nproc 2": []}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.rounds):
            for name, more in zip(results, ([], ["--nproc", "2"])):
                log = run(cmd + [os.path.join(out, "run"), *more], {}, blas_env=False, parse=False)
                line = next(x for x in log.splitlines() if x.startswith("epoch 1/1:"))
                results[name].append(float(line.split(" img/s")[0].split("| ")[-1]))
    rows = [{"setup": name, "img_s": statistics.median(v), "rounds": ", ".join(f"{x:.0f}" for x in v)}
            for name, v in results.items()]
    rows[1]["ratio"] = rows[1]["img_s"] / rows[0]["img_s"]
    return rows


def versions() -> str:
    from minires.distributed.launch import find_mpiexec
    try:
        import mpi4py
        from mpi4py import MPI
        mpi = f"mpi4py {mpi4py.__version__}, {MPI.Get_library_version().splitlines()[0].strip()}"
    except ImportError as exc:
        mpi = f"mpi4py missing ({exc})"
    return f"{mpi}, mpiexec {find_mpiexec()}"


def throughput(args, mpiexec) -> list:
    one = [sys.executable, HERE, "--worker", "throughput", "--model", "resnet20", "--batch", str(args.batch),
           "--steps", str(args.steps), "--warmup", "2"]
    results = {"1 process x 2 threads": [], "2 processes x 1 thread": []}
    for _ in range(args.rounds):  # in turns, so that a machine whose speed drifts slows both alike
        results["1 process x 2 threads"].append(run(one, {"MINIRES_NUM_THREADS": "2"}))
        results["2 processes x 1 thread"].append(run([mpiexec, "-n", "2", *one], {"MINIRES_NUM_THREADS": "1"}))
    rows = []
    for name, rs in results.items():
        rows.append({"setup": name, "img_s": statistics.median(r["img_s"] for r in rs),
                     "step_ms": statistics.median(r["step_ms"] for r in rs),
                     "sync_ms": statistics.median(r["sync_ms"] for r in rs),
                     "rounds": ", ".join(f"{r['img_s']:.0f}" for r in rs)})
    rows[1]["ratio"] = rows[1]["img_s"] / rows[0]["img_s"]
    return rows


def paper_model(resnet18_bytes: float, buckets: int, resnet18_step_cpu_ms: float | None) -> str:
    """The ring-Allreduce model for GPUs, as a markdown table with its assumptions."""
    # Assumptions (no GPU ran here). busbw is what NCCL's all_reduce_perf reports for large messages:
    # below the links' peaks (NVLink 4: 450 GB/s per direction per GPU; NDR InfiniBand: 400 Gb/s = 50 GB/s
    # per NIC; with one NIC per GPU NCCL runs one ring per NIC, 8 x 50 = 400 GB/s per node at best).
    links = [("8 GPUs, 1 node, NVLink 4", 8, 360e9, 3e-6),
             ("2 nodes x 8, 8 NDR NICs/node", 16, 200e9, 6e-6),
             ("8 nodes x 8, 8 NDR NICs/node", 64, 200e9, 6e-6),
             ("64 nodes x 8, 8 NDR NICs/node", 512, 200e9, 6e-6),
             ("8 nodes x 8, 1 NDR NIC/node", 64, 40e9, 6e-6)]
    # Step times (forward + backward + update) per GPU, assumed for an H200; backward ~2/3 of the step.
    steps = [("resnet18 ImageNet 224 px, batch 256/GPU, AMP, PyTorch-class kernels", 35e-3),
             ("resnet18 CIFAR 32 px (small-input stem), batch 512/GPU, float32", 20e-3),
             ("resnet18 CIFAR 32 px (small-input stem), batch 128/GPU, AMP", 4e-3)]
    rows = []
    for link, n, bw, alpha in links:
        for dtype, scale in (("fp32", 1.0), ("fp16", 0.5)):
            # bandwidth term of a ring, plus a latency term per bucket (tree-like: 2 log2 N hops; a flat
            # ring's 2(N-1) hops would be worse, which is why NCCL switches to trees at scale)
            comm_s = 2 * (n - 1) / n * resnet18_bytes * scale / bw + buckets * 2 * np.log2(n) * alpha
            row = {"link": f"{link} (N={n})", "grads": dtype, "comm_ms": 1e3 * comm_s}
            for i, (_, t) in enumerate(steps):
                row[f"e{i}"] = t / (t + comm_s)  # no overlap: the Allreduce after the whole backward
                row[f"o{i}"] = t / (t + max(0.0, comm_s - 2 * t / 3))  # overlap: what outlasts the backward
            rows.append(row)
    cols = [("link", "link", None), ("grads", "grads", None), ("comm_ms", "Allreduce ms", "{:.2f}")]
    for i in range(len(steps)):
        cols += [(f"e{i}", f"eff. S{i + 1}", "{:.2f}"), (f"o{i}", f"overlap S{i + 1}", "{:.2f}")]
    legend = "\n".join(f"- S{i + 1}: {name}: {1e3 * t:.0f} ms per step (assumed)"
                       for i, (name, t) in enumerate(steps))
    cpu = "" if not resnet18_step_cpu_ms else (
        f"\nMeasured here for scale: one resnet18 step at batch 128 on this CPU takes {resnet18_step_cpu_ms:.0f} "
        f"ms (2 threads), so on CPUs the Allreduce of its {resnet18_bytes / MB:.1f} MB is noise.")
    return (f"resnet18 gradients: {resnet18_bytes / MB:.1f} MB in float32, {buckets} buckets of GradientSync. "
            f"Allreduce time = 2(N-1)/N x bytes / busbw + buckets x 2 log2(N) x latency. Assumed busbw: NVLink 4 "
            f"360 GB/s; 8 NDR NICs per node (one per GPU, one NCCL ring each) 200 GB/s; one NDR NIC per node 40 GB/s. "
            f"Assumed latency per hop: 3 us NVLink, 6 us InfiniBand. eff. = step / (step + Allreduce): the Allreduce "
            f"after the backward, as GradientSync does; overlap = the same with the Allreduce started bucket by "
            f"bucket during the backward (2/3 of the step), as PyTorch DDP does, so that only what outlasts the "
            f"backward counts.\n{legend}{cpu}\n\n" + markdown_table(rows, cols))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds (each: 1 process, then 2)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per round (after 2 warm-up steps)")
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--repeats", type=int, default=9, help="Allreduce repeats per bucket size")
    p.add_argument("--no-resnet18-step", action="store_true", help="skip timing one resnet18 step on this CPU")
    p.add_argument("--trainer-images", type=int, default=1280,
                   help="images per `minires train` epoch in part 1b (0: skip it)")
    p.add_argument("--worker", choices=["throughput", "allreduce"], help=argparse.SUPPRESS)
    p.add_argument("--model", default="resnet20", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "throughput":
        worker_throughput(args.model, args.batch, args.steps, args.warmup)
        return 0
    if args.worker == "allreduce":
        worker_allreduce(args.repeats)
        return 0

    from minires.distributed.launch import find_mpiexec
    mpiexec = find_mpiexec()
    if mpiexec is None:
        print("bench_dist: needs mpiexec and mpi4py: pip install '.[dist]'", file=sys.stderr)
        return 2
    steal0 = cpu_steal()
    print(header(versions()))
    print(f"\n## 1. resnet20 training step, global batch {args.batch}, median of {args.rounds} rounds "
          f"x {args.steps} steps\n")
    rows = throughput(args, mpiexec)
    print(markdown_table(rows, [("setup", "setup", None), ("img_s", "img/s", "{:.1f}"),
                                ("step_ms", "step ms", "{:.0f}"), ("sync_ms", "Allreduce ms (incl. wait)", "{:.1f}"),
                                ("ratio", "vs 1 process", "{:.2f}x"), ("rounds", "img/s per round", None)]))
    print(f"\nsteal: {steal_percent(steal0)}")

    if args.trainer_images:
        print(f"\n## 1b. minires train, resnet20, {args.trainer_images} random images, global batch {args.batch}, "
              f"median of {args.rounds} rounds (the Trainer's img/s: loading and augmentation included)\n")
        with tempfile.TemporaryDirectory() as data:
            write_cifar_bin(data, args.trainer_images, 100)
            rows = trainer_throughput(args, data)
        print(markdown_table(rows, [("setup", "setup", None), ("img_s", "img/s", "{:.1f}"),
                                    ("ratio", "vs 1 process", "{:.2f}x"), ("rounds", "img/s per round", None)]))

    print(f"\n## 2. Allreduce of the gradients, 2 processes, median of {args.repeats} (slower process)\n")
    ar = run([mpiexec, "-n", "2", sys.executable, HERE, "--worker", "allreduce", "--repeats", str(args.repeats)],
             {"MINIRES_NUM_THREADS": "1"})
    for r in ar:
        r["bucket"] = f"{r['bucket_mb']:g}" + (" (default)" if r["default"] else "")
        r["gbs"] = r["mb"] * MB / (r["ms"] / 1e3) / 1e9
    print(markdown_table(ar, [("model", "model", None), ("params", "parameters", "{:,}"),
                              ("mb", "gradient MB", "{:.2f}"), ("bucket", "bucket MB", None),
                              ("buckets", "Allreduces", None), ("ms", "ms per step", "{:.2f}"),
                              ("gbs", "GB/s (bytes / time)", "{:.2f}")]))
    print("\nairbench94: not in minires.models yet (its row comes when the model lands).")

    step18 = None
    if not args.no_resnet18_step:
        step = run([sys.executable, HERE, "--worker", "throughput", "--model", "resnet18", "--batch", "128",
                   "--steps", "1", "--warmup", "1"], {"MINIRES_NUM_THREADS": "2"})
        step18 = step["step_ms"]
    print("\n## 3. On paper: ring Allreduce on GPUs\n")
    r18 = next(r for r in ar if r["model"] == "resnet18" and r["default"])
    print(paper_model(r18["mb"] * MB, r18["buckets"], step18))
    print(f"\nsteal over the whole run: {steal_percent(steal0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
