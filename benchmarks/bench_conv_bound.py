"""How fast can an im2col + GEMM conv get on this machine's BLAS? A lower bound against PyTorch.

    python benchmarks/bench_conv_bound.py                 # issue 4's four shapes and ResNet-20's convs
    python benchmarks/bench_conv_bound.py --repeats 9 --only 16->16

A 3x3 conv's forward and backward by im2col + GEMM are three matrix products: forward
(P, 9C) @ (9C, O), dx (P, 9O) @ (9O, C) as a conv of the gradient, dw (9C, P) @ (P, O), with
P = N*OH*OW output pixels. Their time alone, with the columns already built and the rows split
over the cores as minires splits them, is the least any im2col + GEMM implementation on this
BLAS can take. Its ratio to PyTorch's whole conv forward+backward (oneDNN's direct kernels, no
columns) is the best ratio minires's design can reach; minires's own ratio is printed beside it.
minires, the bare GEMMs and PyTorch are timed in turns (see common.interleaved_ms).
"""
from __future__ import annotations

import argparse
import functools
import operator
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires.bench.common import cpu_steal, header, interleaved_ms, markdown_table, steal_percent, torch_or_none, write_json  # noqa: E402

import minires as mr  # noqa: E402
import minires.functional as F  # noqa: E402
from minires import parallel  # noqa: E402

# (in channels, out channels, input size, stride): issue 4's four shapes, then ResNet-20's convs.
SHAPES = [(64, 64, 32, 1), (128, 128, 16, 1), (256, 256, 8, 1), (64, 128, 32, 2),
          (16, 16, 32, 1), (32, 32, 16, 1), (64, 64, 8, 1), (16, 32, 32, 2), (32, 64, 16, 2)]


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", default="", help="run only shapes whose label contains this")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
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
