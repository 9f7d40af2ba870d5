"""How fast can an im2col + GEMM conv get on this machine's BLAS? A lower bound against PyTorch.

    python benchmarks/bench_conv_bound.py                 # issue 4's four shapes and ResNet-20's convs
    python benchmarks/bench_conv_bound.py --repeats 9 --only 16->16
    python benchmarks/bench_conv_bound.py --parts --set resnet20    # forward / dx / dw apart, one thread, CPU time
    python benchmarks/bench_conv_bound.py --parts --set airbench94 --batch 512

A 3x3 conv's forward and backward by im2col + GEMM are three matrix products: forward
(P, 9C) @ (9C, O), dx (P, 9O) @ (9O, C) as a conv of the gradient, dw (9C, P) @ (P, O), with
P = N*OH*OW output pixels. Their time alone, with the columns already built and the rows split
over the cores as minires splits them, is the least any im2col + GEMM implementation on this
BLAS can take. Its ratio to PyTorch's whole conv forward+backward (oneDNN's direct kernels, no
columns) is the best ratio minires's design can reach; minires's own ratio is printed beside it.
minires, the bare GEMMs and PyTorch are timed in turns (see common.interleaved_ms).

--parts times forward, dx and dw apart (dx = forward with only the input's gradient, less the
forward; likewise dw; fwd+bwd is timed with both gradients at once), each beside its GEMM alone, and PyTorch in NCHW and in channels_last. It runs
one thread in both libraries and counts CPU time (time.process_time): on a shared machine other
tenants' load then changes the figures little, where wall time moved 2x between repeats.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time
import operator
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.bench.common import cpu_steal, header, interleaved_ms, markdown_table, steal_percent, torch_or_none, write_json  # noqa: E402

import minires as mr  # noqa: E402
import minires.functional as F  # noqa: E402
from minires import parallel, tuning  # noqa: E402

# (in channels, out channels, input size, stride): issue 4's four shapes, then ResNet-20's convs.
SHAPES = [(64, 64, 32, 1), (128, 128, 16, 1), (256, 256, 8, 1), (64, 128, 32, 2),
          (16, 16, 32, 1), (32, 32, 16, 1), (64, 64, 8, 1), (16, 32, 32, 2), (32, 64, 16, 2)]
# --parts --set: (in, out, input size, stride, kernel) of a model's convs.
SETS = {"resnet20": [(16, 16, 32, 1, 3), (32, 32, 16, 1, 3), (64, 64, 8, 1, 3), (16, 32, 32, 2, 3),
                     (32, 64, 16, 2, 3)],
        "airbench94": [(24, 64, 31, 1, 3), (64, 64, 15, 1, 3), (64, 256, 15, 1, 3), (256, 256, 7, 1, 3),
                       (256, 256, 3, 1, 3)],
        "pointwise": [(64, 128, 32, 2, 1), (128, 256, 16, 2, 1), (64, 256, 16, 1, 1), (256, 64, 16, 1, 1)]}


def gemm_only(rng, N, C, O, H, stride):
    """The three GEMMs of a 3x3 conv's forward+backward on ready-made operands, rows split over the cores."""
    OH = (H + 2 - 3) // stride + 1
    P = N * OH * OH
    a = rng.standard_normal((P, 9 * C), dtype=np.float32)       # columns of x
    wf = rng.standard_normal((9 * C, O), dtype=np.float32)       # forward weight matrix
    g = rng.standard_normal((P, O), dtype=np.float32)            # output gradient rows
    out = np.empty((P, O), np.float32)
    # dx: stride 1 is a conv of g over N*H*W rows; strided convs multiply g by W^T (then col2im).
    dx_rows = N * H * H if stride == 1 else P
    gcols = rng.standard_normal((dx_rows, 9 * O if stride == 1 else O), dtype=np.float32)
    wb = rng.standard_normal((gcols.shape[1], C if stride == 1 else 9 * C), dtype=np.float32)
    dx = np.empty((dx_rows, wb.shape[1]), np.float32)

    def run():
        parallel.split(lambda r0, r1: np.matmul(a[r0:r1], wf, out=out[r0:r1]), P, blas=True, item_size=9 * C * O)
        parallel.split(lambda r0, r1: np.matmul(gcols[r0:r1], wb, out=dx[r0:r1]), dx_rows, blas=True,
                       item_size=wb.size)
        return parallel.split(lambda r0, r1: a[r0:r1].T @ g[r0:r1], P, blas=True, item_size=9 * C * O,
                              reduce=lambda parts: functools.reduce(operator.add, parts))  # no copy of one part
    return run


def minires_conv(rng, N, C, O, H, stride):
    # Channels-last input and gradient, as inside a minires network (convs return NHWC memory).
    x = mr.tensor(np.ascontiguousarray(rng.standard_normal((N, H, H, C), dtype=np.float32)).transpose(0, 3, 1, 2),
                  requires_grad=True)
    w = mr.tensor(rng.standard_normal((O, C, 3, 3), dtype=np.float32) * 0.05, requires_grad=True)
    OH = (H + 2 - 3) // stride + 1
    g = mr.tensor(np.ascontiguousarray(rng.standard_normal((N, OH, OH, O), dtype=np.float32)).transpose(0, 3, 1, 2))

    def run():
        x.grad = w.grad = None  # no gradient accumulation across calls in either library
        F.conv2d(x, w, None, stride, 1).backward(g)
    return run


def torch_conv(torch, rng, N, C, O, H, stride):
    """PyTorch's default NCHW layout, the reference of issue 4's targets."""
    x = torch.from_numpy(rng.standard_normal((N, C, H, H), dtype=np.float32)).requires_grad_()
    w = torch.from_numpy(rng.standard_normal((O, C, 3, 3), dtype=np.float32) * 0.05).requires_grad_()
    OH = (H + 2 - 3) // stride + 1
    g = torch.from_numpy(rng.standard_normal((N, O, OH, OH), dtype=np.float32))

    def run():
        x.grad = w.grad = None
        torch.nn.functional.conv2d(x, w, None, stride, 1).backward(g)
    return run


def cpu_ms(fns, repeats, warmup):
    """Median CPU time (time.process_time) in ms of each fn, timed in turns; for one-thread runs."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for r in range(repeats):
        for i in (range(len(fns)) if r % 2 == 0 else range(len(fns) - 1, -1, -1)):
            t0 = time.process_time()
            fns[i]()
            times[i].append((time.process_time() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def part_fns(rng, N, C, O, H, s, k):
    """{name: fn}: minires's, the bare GEMMs' and PyTorch's forward, forward+dx and forward+dw of one conv."""
    p = k // 2
    OH = (H + 2 * p - k) // s + 1
    x = np.ascontiguousarray(rng.standard_normal((N, H, H, C), dtype=np.float32)).transpose(0, 3, 1, 2)
    w = rng.standard_normal((O, C, k, k), dtype=np.float32) * 0.05
    g = np.ascontiguousarray(rng.standard_normal((N, OH, OH, O), dtype=np.float32)).transpose(0, 3, 1, 2)

    def mr_run(dx, dw):
        xt, wt = mr.tensor(x, requires_grad=dx), mr.tensor(w, requires_grad=dw)
        if not (dx or dw):
            with mr.no_grad():
                return lambda: F.conv2d(xt, wt, None, s, p)
        return lambda: F.conv2d(xt, wt, None, s, p).backward(mr.tensor(g))
    runs = (("fwd", False, False), ("+dx", True, False), ("+dw", False, True), ("+both", True, True))
    fns = {f"mr {n}": mr_run(dx, dw) for n, dx, dw in runs}
    P, rows_dx = N * OH * OH, (N * H * H if s == 1 else N * OH * OH)
    a, wf, gr = (rng.standard_normal(shape, dtype=np.float32) for shape in ((P, k * k * C), (k * k * C, O), (P, O)))
    gc = rng.standard_normal((rows_dx, k * k * O if s == 1 else O), dtype=np.float32)
    wb = rng.standard_normal((gc.shape[1], C if s == 1 else k * k * C), dtype=np.float32)
    def blocks(fn, m, width):  # row blocks of about tuning.CPU_CHUNK_BYTES, as minires's chunks
        step = max(1, tuning.CPU_CHUNK_BYTES // (4 * width))
        return lambda: [fn(slice(r, r + step)) for r in range(0, m, step)]
    fns.update({"gemm fwd": blocks(lambda r: a[r] @ wf, P, a.shape[1]),
                "gemm dx": blocks(lambda r: gc[r] @ wb, rows_dx, gc.shape[1]),
                "gemm dw": blocks(lambda r: a[r].T @ gr[r], P, a.shape[1])})
    torch = torch_or_none()
    for fmt in (("nchw", "cl") if torch is not None else ()):
        mf = torch.channels_last if fmt == "cl" else torch.contiguous_format
        tx, tw, tg = (torch.from_numpy(np.ascontiguousarray(v)).contiguous(memory_format=mf) for v in (x, w, g))

        def t_run(dx, dw, tx=tx, tw=tw, tg=tg):
            xa, wa = tx.detach().requires_grad_(dx), tw.detach().requires_grad_(dw)
            if not (dx or dw):
                return lambda: torch.nn.functional.conv2d(xa, wa, None, s, p)
            return lambda: torch.nn.functional.conv2d(xa, wa, None, s, p).backward(tg)
        fns.update({f"torch {fmt} {n}": t_run(dx, dw) for n, dx, dw in runs})
    return fns


def main_parts(args):
    """--parts: forward, dx and dw apart, one thread in both libraries, CPU time."""
    torch = torch_or_none()
    if torch is not None:
        torch.set_num_threads(1)
    parallel.set_num_threads(1)
    try:  # NOTE: hold_blas() holds nothing at one minires thread, so BLAS is set to one thread here
        import threadpoolctl
        limits = threadpoolctl.threadpool_limits(1, user_api="blas")
    except ImportError:
        if not parallel._env_runs_blas_on_one_thread():
            raise SystemExit("bench_conv_bound --parts: needs threadpoolctl or OPENBLAS_NUM_THREADS=1") from None
        limits = None
    head = header(f"conv forward / dx / dw apart, N={args.batch}, ONE thread in both libraries (CPU time, "
                  f"median of {args.repeats} after {args.warmup} warm-up, in turns); dx = (fwd+dx) - fwd, dw likewise")
    print(head, flush=True)
    rows = []
    for C, O, H, s, k in SETS[args.set]:
        label = f"{C}->{O} {k}x{k} s{s} @{H}"
        if args.only and args.only not in label:
            continue
        fns = part_fns(np.random.default_rng(0), args.batch, C, O, H, s, k)
        ms = dict(zip(fns, cpu_ms(list(fns.values()), args.repeats, args.warmup)))
        row = {"shape": label}
        for lib in ["mr"] + (["torch nchw", "torch cl"] if torch is not None else []):
            f = ms[f"{lib} fwd"]
            row.update({f"{lib} fwd": f, f"{lib} dx": ms[f"{lib} +dx"] - f, f"{lib} dw": ms[f"{lib} +dw"] - f})
            row[f"{lib} fwd+bwd"] = ms[f"{lib} +both"]  # measured together: dx and dw may share work
        row.update({n: ms[n] for n in ("gemm fwd", "gemm dx", "gemm dw")})
        row["gemm total"] = ms["gemm fwd"] + ms["gemm dx"] + ms["gemm dw"]
        if torch is not None:
            row["mr/torch cl"] = row["mr fwd+bwd"] / row["torch cl fwd+bwd"]
            row["mr/torch nchw"] = row["mr fwd+bwd"] / row["torch nchw fwd+bwd"]
        rows.append(row)
        print("  " + "  ".join(f"{n} {v:.2f}" if isinstance(v, float) else v for n, v in row.items()), flush=True)
    names = [n for n in rows[0] if n != "shape"] if rows else []
    table = markdown_table(rows, [("shape", "conv", None)] + [(n, n + (" ms" if "/" not in n else ""), "{:.2f}")
                                                             for n in names])
    if limits is not None:
        limits.restore_original_limits()
    print()
    print(table)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", default="", help="run only shapes whose label contains this")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--parts", action="store_true", help="forward / dx / dw apart, one thread, CPU time")
    p.add_argument("--set", default="resnet20", choices=sorted(SETS), help="the convs --parts times")
    args = p.parse_args(argv)
    if args.parts:
        return main_parts(args)
    torch = torch_or_none()
    head = header(f"3x3 conv forward+backward, N={args.batch} (minires channels-last as in its networks, PyTorch NCHW), median of {args.repeats} after "
                  f"{args.warmup} warm-up, minires / bare GEMMs / PyTorch timed in turns")
    print(head, flush=True)
    since = cpu_steal()
    rows = []
    for C, O, H, s in SHAPES:
        label = f"{C}->{O} s{s} @{H}x{H}"
        if args.only and args.only not in label:
            continue
        rng = np.random.default_rng(0)
        fns = [minires_conv(rng, args.batch, C, O, H, s), gemm_only(rng, args.batch, C, O, H, s)]
        if torch is not None:
            fns.append(torch_conv(torch, rng, args.batch, C, O, H, s))
        with parallel.hold_blas():  # BLAS at one thread, the GEMMs split over the cores: as in training
            ms = interleaved_ms(fns, args.repeats, args.warmup)
        OH = (H + 2 - 3) // s + 1
        flops = 3 * 2 * args.batch * OH * OH * 9 * C * O
        row = {"shape": label, "mr_ms": ms[0], "gemm_ms": ms[1], "gemm_gflops": flops / (ms[1] * 1e-3) / 1e9,
               "overhead": ms[0] / ms[1]}
        if torch is not None:
            row.update(torch_ms=ms[2], ratio=ms[0] / ms[2], bound=ms[1] / ms[2])
        rows.append(row)
        print(f"  {label:22s} minires {ms[0]:8.2f} ms  GEMMs alone {ms[1]:8.2f} ms"
              + (f"  torch {ms[2]:8.2f} ms  minires/torch {ms[0] / ms[2]:.2f}x  GEMMs/torch {ms[1] / ms[2]:.2f}x"
                 if torch is not None else ""), flush=True)
    columns = [("shape", "conv 3x3", None), ("mr_ms", "minires ms", "{:.2f}"), ("gemm_ms", "GEMMs alone ms", "{:.2f}"),
               ("gemm_gflops", "GEMMs GFLOP/s", "{:.0f}"), ("overhead", "minires/GEMMs", "{:.2f}x")]
    if torch is not None:
        columns += [("torch_ms", "torch ms", "{:.2f}"), ("ratio", "minires/torch", "{:.2f}x"),
                    ("bound", "GEMMs alone/torch (best reachable)", "{:.2f}x")]
    table = markdown_table(rows, columns) + f"\n\nCPU steal time during the run: {steal_percent(since)}"
    print()
    print(table)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "bench_conv_bound.json"), {"header": head, "rows": rows})
    with open(os.path.join(args.out, "bench_conv_bound.md"), "w") as f:
        f.write("```\n" + head + "\n```\n\n" + table + "\n")
    return rows


if __name__ == "__main__":
    main()
