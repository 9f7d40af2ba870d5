"""Per-kernel CPU benchmark of minires against the machine's ceilings and PyTorch (when importable).

    python benchmarks/bench_kernels.py                 # N=128, full table
    python benchmarks/bench_kernels.py --batch 32 --only conv
    minires bench                                      # the same

Prints a Markdown table under a header naming the machine and versions, and writes
bench_kernels.{json,md,png} into --out. Times are medians of --repeats after --warmup calls.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (copy_ceiling_gbs, gemm_ceiling_gflops, header, markdown_table, median_ms,  # noqa: E402
                    torch_or_none, write_json)

import minires as mr  # noqa: E402
import minires.functional as F  # noqa: E402


def _arr(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def conv_case(N, C, O, H, k, stride, pad):
    """conv2d forward and forward+backward at one shape."""
    OH = (H + 2 * pad - k) // stride + 1
    flops = 2 * N * O * OH * OH * C * k * k
    name = f"conv2d {C}->{O} {k}x{k} s{stride} @{H}x{H}"
    return name, dict(x=(N, C, H, H), w=(O, C, k, k), g=(N, O, OH, OH), stride=stride, pad=pad), flops


def build_cases(N):
    """(kernel, shape label, kind, flops or bytes, minires fn-maker, torch fn-maker)."""
    cases = []
    convs = [conv_case(N, 64, 64, 32, 3, 1, 1), conv_case(N, 128, 128, 16, 3, 1, 1),
             conv_case(N, 256, 256, 8, 3, 1, 1), conv_case(N, 64, 128, 32, 3, 2, 1),
             conv_case(N, 256, 64, 16, 1, 1, 0), conv_case(N, 64, 256, 16, 1, 1, 0)]
    for name, s, flops in convs:
        cases.append((name, "fwd", flops, ("conv", s, False)))
        cases.append((name, "fwd+bwd", 3 * flops, ("conv", s, True)))
    x4 = (N, 64, 32, 32)
    nbytes = int(np.prod(x4)) * 4
    cases += [
        (f"batch_norm {x4}", "fwd+bwd", 5 * nbytes, ("bn", x4, True)),
        (f"relu {x4}", "fwd+bwd", 4 * nbytes, ("relu", x4, True)),
        (f"add_relu {x4}", "fwd+bwd", 6 * nbytes, ("add_relu", x4, True)),
        (f"max_pool2d 2x2 {x4}", "fwd+bwd", 3 * nbytes, ("maxpool", x4, True)),
        (f"avg_pool2d 2x2 {x4}", "fwd+bwd", 3 * nbytes, ("avgpool", x4, True)),
        (f"global avg pool {(N, 512, 4, 4)}", "fwd+bwd", 2 * N * 512 * 16 * 4, ("gap", (N, 512, 4, 4), True)),
        (f"linear {N}x512->1000", "fwd+bwd", 3 * 2 * N * 512 * 1000, ("linear", (N, 512, 1000), True)),
        (f"cross_entropy {N}x1000", "fwd+bwd", 3 * N * 1000 * 4, ("ce", (N, 1000), True)),
    ]
    return cases


def make_fn(lib, spec, rng):
    """A closure running one forward (and backward) of the kernel in `lib` ('mr' or 'torch')."""
    kind, s, backward = spec
    torch = torch_or_none() if lib == "torch" else None

    def T(a, grad=True):
        if lib == "mr":
            return mr.tensor(a, requires_grad=grad)
        return torch.tensor(a, requires_grad=grad)

    f = F if lib == "mr" else torch.nn.functional
    if kind == "conv":
        x, w = T(_arr(rng, s["x"])), T(_arr(rng, s["w"], 0.05))
        g = _arr(rng, s["g"])
        g = mr.tensor(g) if lib == "mr" else torch.tensor(g)

        def run():
            out = f.conv2d(x, w, None, s["stride"], s["pad"])
            if backward:
                out.backward(g)
    elif kind in ("bn", "relu", "maxpool", "avgpool", "gap", "add_relu"):
        x = T(_arr(rng, s))
        y = T(_arr(rng, s))
        C = s[1]
        rm, rv = (mr.zeros(C), mr.ones(C)) if lib == "mr" else (torch.zeros(C), torch.ones(C))
        wt, bs = T(np.ones(C, np.float32)), T(np.zeros(C, np.float32))

        def fwd():
            if kind == "bn":
                return f.batch_norm(x, rm, rv, wt, bs, training=True)
            if kind == "relu":
                return f.relu(x)
            if kind == "maxpool":
                return f.max_pool2d(x, 2)
            if kind == "avgpool":
                return f.avg_pool2d(x, 2)
            if kind == "gap":
                return f.adaptive_avg_pool2d(x, 1)
            if lib == "mr":
                return F.add_relu(x, y)
            return torch.relu(x + y)
        out0 = fwd()
        g = _arr(rng, tuple(out0.shape))
        g = mr.tensor(g) if lib == "mr" else torch.tensor(g)

        def run():
            out = fwd()
            if backward:
                out.backward(g)
    elif kind == "linear":
        n, i, o = s
        x, w, b = T(_arr(rng, (n, i))), T(_arr(rng, (o, i), 0.05)), T(_arr(rng, (o,)))
        g = _arr(rng, (n, o))
        g = mr.tensor(g) if lib == "mr" else torch.tensor(g)

        def run():
            out = f.linear(x, w, b)
            if backward:
                out.backward(g)
    elif kind == "ce":
        n, c = s
        x = T(_arr(rng, (n, c)))
        t = rng.integers(0, c, n)
        t = mr.tensor(t) if lib == "mr" else torch.tensor(t)

        def run():
            out = f.cross_entropy(x, t)
            if backward:
                out.backward()
    else:
        raise ValueError(kind)
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", default="", help="run only kernels whose name contains this")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)

    torch = None if args.no_torch else torch_or_none()
    gemm = gemm_ceiling_gflops()
    copy = copy_ceiling_gbs()
    head = header(f"ceilings measured in this run: float32 GEMM {gemm:.1f} GFLOP/s, copy {copy:.1f} GB/s; "
                  f"N={args.batch}, median of {args.repeats} after {args.warmup} warm-up")
    print(head, flush=True)
    rows = []
    for name, mode, work, spec in build_cases(args.batch):
        if args.only and args.only not in name:
            continue
        rng = np.random.default_rng(0)
        ms = median_ms(make_fn("mr", spec, rng), args.repeats, args.warmup)
        row = {"kernel": name, "pass": mode, "ms": ms}
        if spec[0] in ("conv", "linear"):
            row["rate"] = f"{work / (ms * 1e-3) / 1e9:.1f} GFLOP/s"
            row["pct"] = 100 * work / (ms * 1e-3) / 1e9 / gemm
        else:
            row["rate"] = f"{work / (ms * 1e-3) / 1e9:.1f} GB/s"
            row["pct"] = 100 * work / (ms * 1e-3) / 1e9 / copy
        if torch is not None:
            tms = median_ms(make_fn("torch", spec, np.random.default_rng(0)), args.repeats, args.warmup)
            row["torch_ms"] = tms
            row["ratio"] = ms / tms
        rows.append(row)
        print(f"  {name:40s} {mode:8s} {ms:9.2f} ms" + (f"  torch {row['torch_ms']:8.2f} ms  x{row['ratio']:.2f}"
                                                         if torch is not None else ""), flush=True)
    columns = [("kernel", "kernel", None), ("pass", "pass", None), ("ms", "minires ms", "{:.2f}"),
               ("rate", "rate", None), ("pct", "% of ceiling", "{:.0f}%")]
    if torch is not None:
        columns += [("torch_ms", "torch ms", "{:.2f}"), ("ratio", "minires/torch", "{:.2f}x")]
    table = markdown_table(rows, columns)
    print()
    print(table)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "bench_kernels.json"),
               {"header": head, "gemm_gflops": gemm, "copy_gbs": copy, "rows": rows})
    with open(os.path.join(args.out, "bench_kernels.md"), "w") as f:
        f.write("```\n" + head + "\n```\n\n" + table + "\n")
    try:
        _plot(rows, os.path.join(args.out, "bench_kernels.png"), torch is not None)
    except ImportError:
        print("(matplotlib not installed: no PNG)")
    return rows


def _plot(rows, path, with_torch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['kernel']} {r['pass']}" for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(rows) + 1.5))
    ax.barh(y - 0.2 if with_torch else y, [r["ms"] for r in rows], height=0.4, label="minires")
    if with_torch:
        ax.barh(y + 0.2, [r["torch_ms"] for r in rows], height=0.4, label="PyTorch")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms (median, log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
