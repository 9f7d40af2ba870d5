"""Per-kernel benchmark of minires against the machine's ceilings and PyTorch (when importable), CPU and GPU.

    minires bench                                      # N=128, full table, CPU
    minires bench --batch 32 --only conv
    minires bench --device cpu,cuda                    # CPU and GPU columns side by side, and the speed-up
    python -m minires bench ...                        # the same, from a checkout: its minires

Prints one Markdown table under a header naming the machine, the GPU and the versions, and writes
bench_kernels.{json,md,png} into --out (the PNG titled with the devices and the batch). Times are medians of --repeats after --warmup calls; on a
GPU each call is timed with CUDA events. On the CPU minires and PyTorch are timed in turns (one
call each, repeated), so that the machine's drift hits both alike; the share of CPU time stolen by
the hypervisor during the run is printed below the table. PyTorch runs at minires's thread count
(torch.set_num_threads), in float32 channels_last and NCHW (the old reference) for 4-d inputs, the
faster being the reference the ratio is to; on a CPU with AVX512-BF16 or AMX also in bf16 autocast. Ceilings (float32 GEMM, memory copy) are
measured in the same run on each device.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys

import numpy as np

import minires as mr
import minires.functional as F
from .. import parallel
from ..io import atomic_write_bytes, atomic_write_text
from ..train.config import HelpFormatter
from .common import (copy_ceiling_gbs, cpu_flags, cpu_steal, cuda_ceilings, cuda_header, cuda_median_ms,
                     faster_layout, gemm_ceiling_gflops, has_bf16, header, interleaved_ms, markdown_table, median_ms,
                     steal_percent, to_torch_layout, torch_or_none, write_json)

FOUR_D = ("conv", "bn", "relu", "add_relu", "maxpool", "avgpool", "gap")  # kinds whose tensors have a layout


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


def make_fn(lib, spec, rng, device="cpu", layout="NCHW", bf16=False):
    """A closure running one forward (and backward) of the kernel in `lib` ('mr' or 'torch') on `device`;
    PyTorch's 4-d tensors in `layout` ("NCHW" or "channels_last"), under bf16 autocast if `bf16`."""
    kind, s, backward = spec
    torch = torch_or_none() if lib == "torch" else None

    def T(a, grad=True):
        if lib == "mr":
            return mr.tensor(a, requires_grad=grad, device=device)
        return to_torch_layout(torch, layout, torch.tensor(a, requires_grad=grad, device=device))

    f = F if lib == "mr" else torch.nn.functional
    if kind == "conv":
        x, w = T(_arr(rng, s["x"])), T(_arr(rng, s["w"], 0.05))
        g = T(_arr(rng, s["g"]), grad=False)

        def run():
            out = f.conv2d(x, w, None, s["stride"], s["pad"])
            if backward:
                out.backward(g)
    elif kind in ("bn", "relu", "maxpool", "avgpool", "gap", "add_relu"):
        x = T(_arr(rng, s))
        y = T(_arr(rng, s))
        C = s[1]
        rm, rv = T(np.zeros(C, np.float32), False), T(np.ones(C, np.float32), False)
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
        g = T(_arr(rng, tuple(out0.shape)), grad=False)

        def run():
            out = fwd()
            if backward:
                out.backward(g)
    elif kind == "linear":
        n, i, o = s
        x, w, b = T(_arr(rng, (n, i))), T(_arr(rng, (o, i), 0.05)), T(_arr(rng, (o,)))
        g = T(_arr(rng, (n, o)), grad=False)

        def run():
            out = f.linear(x, w, b)
            if backward:
                out.backward(g)
    elif kind == "ce":
        n, c = s
        x = T(_arr(rng, (n, c)))
        t = T(rng.integers(0, c, n), grad=False)

        def run():
            out = f.cross_entropy(x, t)
            if backward:
                out.backward()
    else:
        raise ValueError(kind)
    if bf16:
        def run_bf16(inner=run):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                inner()
        return run_bf16
    return run


def _time_torch_cpu(mine, spec, args, bf16) -> tuple:
    """(minires ms, {run: PyTorch ms}) timed in turns: float32 NCHW, channels_last (4-d kinds), bf16 autocast."""
    runs = {"NCHW": make_fn("torch", spec, np.random.default_rng(0))}
    if spec[0] in FOUR_D:
        runs["channels_last"] = make_fn("torch", spec, np.random.default_rng(0), layout="channels_last")
    if bf16:
        runs["bf16"] = make_fn("torch", spec, np.random.default_rng(0), layout="channels_last"
                               if spec[0] in FOUR_D else "NCHW", bf16=True)
    ms = interleaved_ms([mine, *runs.values()], args.repeats, args.warmup)
    return ms[0], dict(zip(runs, ms[1:]))


def _devices(parser, spec: str) -> list:
    devices = []
    for d in spec.split(","):
        try:
            d = mr.backend.parse_device(d)
        except ValueError as e:
            parser.error(f"--device {d}: {str(e).removeprefix('device: ')}")
        if d != "cpu" and not mr.backend.cupy_available():
            parser.error(f"--device {d}: needs CuPy and a CUDA GPU (pip install 'minires[gpu]'), none found here")
        if d not in devices:
            devices.append(d)
    return devices


def _torch_device_ok(torch, device) -> bool:
    return device == "cpu" or bool(torch.cuda.is_available())


def _time_cases(args, devices, ceilings, torch) -> list:
    """One row per kernel: minires's time on each device, its rate, its share of the ceiling, PyTorch's time."""
    rows = []
    for name, mode, work, spec in build_cases(args.batch):
        if args.only is not None and args.only not in name:
            continue
        row = {"kernel": name, "pass": mode}
        for d in devices:
            ref = torch is not None and _torch_device_ok(torch, d)
            mine = make_fn("mr", spec, np.random.default_rng(0), d)
            if d == "cpu" and ref:  # in turns with PyTorch: both see the same machine drift
                ms, torch_ms = _time_torch_cpu(mine, spec, args, has_bf16(cpu_flags()))
                layout, tms = faster_layout({k: v for k, v in torch_ms.items() if k != "bf16"})
                row.update(cpu_torch_layout=layout if spec[0] in FOUR_D else "2-d", cpu_torch_nchw_ms=torch_ms["NCHW"])
                if "bf16" in torch_ms:
                    row["cpu_torch_bf16_ms"] = torch_ms["bf16"]
            elif d == "cpu":
                ms = median_ms(mine, args.repeats, args.warmup)
            else:
                ms = cuda_median_ms(mine, args.repeats, args.warmup, d)
            gemm, copy = ceilings[d]
            row[f"{d}_ms"] = ms
            if spec[0] in ("conv", "linear"):
                row[f"{d}_rate"] = f"{work / (ms * 1e-3) / 1e9:.1f} GFLOP/s"
                row[f"{d}_pct"] = 100 * work / (ms * 1e-3) / 1e9 / gemm
            else:
                row[f"{d}_rate"] = f"{work / (ms * 1e-3) / 1e9:.1f} GB/s"
                row[f"{d}_pct"] = 100 * work / (ms * 1e-3) / 1e9 / copy
            if ref and d != "cpu":
                tms = median_ms(make_fn("torch", spec, np.random.default_rng(0), d), args.repeats, args.warmup,
                                sync=torch.cuda.synchronize)
            if ref:
                row[f"{d}_torch_ms"], row[f"{d}_ratio"] = tms, ms / tms
        if len(devices) > 1:
            row["speedup"] = row[f"{devices[0]}_ms"] / row[f"{devices[1]}_ms"]
        rows.append(row)
        print(f"  {len(rows)}: {name} {mode}", file=sys.stderr, flush=True)  # progress; the table comes at the end
    return rows


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, as `minires train` gives them."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def kernel_names() -> list:
    """The kernels timed, in table order: conv2d, batch_norm, ... (a row's name without its shape)."""
    names = []
    for name, *_ in build_cases(1):
        words = name.split(" ")
        kernel = " ".join(words[:next(i for i, w in enumerate(words) if not w[0].isalpha())])
        if kernel not in names:
            names.append(kernel)
    return names


def _parse(argv, prog):
    """The options, each checked before anything is measured: a mistake is one line and exit code 2."""
    kernels = ", ".join(kernel_names())
    p = _Parser(prog=prog, description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--batch", type=int, default=128, metavar="N", help="images per call (N of every shape)")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per kernel (the median is shown)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per kernel before the timed ones")
    p.add_argument("--only", default=None, metavar="TEXT",
                   help=f"time only the kernels whose row name contains TEXT (the kernels: {kernels})")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--device", default="cpu", help="comma-separated devices, e.g. cpu,cuda")
    p.add_argument("--out", default="bench-results", metavar="DIR", help="folder for bench_kernels.{json,md,png}")
    p.add_argument("--ceiling-scale", type=float, default=1.0,
                   help="GPU ceilings measured on an 8192^2 GEMM and a 1 GiB copy times this")
    args = p.parse_args(argv)
    for flag, value, least in (("--batch", args.batch, 1), ("--repeats", args.repeats, 1), ("--warmup", args.warmup, 0)):
        if value < least:
            p.error(f"{flag} must be >= {least}, got {value}")
    if not (math.isfinite(args.ceiling_scale) and args.ceiling_scale > 0):
        p.error(f"--ceiling-scale must be a positive number, got {args.ceiling_scale}")
    if args.only is not None and not any(args.only in name for name, *_ in build_cases(args.batch)):
        p.error(f"--only {args.only!r} matches no kernel; the kernels: {kernels}")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        p.error(f"--out {args.out} is a file, not a folder: give a folder for bench_kernels.{{json,md,png}}")
    probe = out
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK) or not os.stat(probe).st_mode & 0o222:
        p.error(f"--out {args.out}: {probe} is not a writable folder")
    return p, args


def main(argv=None, prog=None):
    """`minires bench`: time the kernels, print the table, write bench_kernels.{json,md,png}; returns the rows."""
    p, args = _parse(argv, prog)
    devices = _devices(p, args.device)

    torch = None if args.no_torch else torch_or_none()
    if torch is not None:  # like for like: PyTorch on minires's thread count, stated in the header
        torch.set_num_threads(parallel.get_num_threads())
    since = cpu_steal()
    ceilings, lines = {}, []
    for d in devices:
        if d == "cpu":
            ceilings[d] = (gemm_ceiling_gflops(), copy_ceiling_gbs())
        else:
            k = min(max(args.ceiling_scale, 1e-3), 1.0)
            ceilings[d] = cuda_ceilings(d, n=max(64, int(8192 * k ** (1 / 3))), nbytes=max(2**20, int(2**30 * k)))
            lines.append(cuda_header(d))
        lines.append(f"{d} ceilings measured in this run: float32 GEMM {ceilings[d][0]:.1f} GFLOP/s, "
                     f"copy {ceilings[d][1]:.1f} GB/s")
    if torch is not None:
        lines.append(f"PyTorch: torch.set_num_threads({torch.get_num_threads()}), minires {parallel.get_num_threads()} "
                     "threads; CPU: PyTorch float32 in channels_last and NCHW (4-d inputs), the faster is the "
                     "reference the ratio is to" + ("; bf16 autocast as a reference column" if has_bf16(cpu_flags())
                                                    else ""))
    lines.append(f"N={args.batch}, median of {args.repeats} after {args.warmup} warm-up"
                 + ("; GPU times by CUDA events" if len(devices) > 1 or devices[0] != "cpu" else ""))
    head = header("\n".join(lines))
    print(head, flush=True)
    # NOTE: BLAS at one thread while timing, so that the kernels split over the cores as they do
    # in training (minires.parallel); the ceilings above measured BLAS on its own threads too.
    with parallel.hold_blas():
        rows = _time_cases(args, devices, ceilings, torch)
    columns = [("kernel", "kernel", None), ("pass", "pass", None)]
    for d in devices:
        columns += [(f"{d}_ms", f"{d} ms", "{:.2f}"), (f"{d}_rate", f"{d} rate", None),
                    (f"{d}_pct", f"{d} % of ceiling", "{:.0f}%")]
        if any(f"{d}_torch_layout" in r for r in rows):
            columns += [(f"{d}_torch_ms", f"torch {d} ms (faster layout)", "{:.2f}"),
                        (f"{d}_torch_layout", "torch layout", None),
                        (f"{d}_torch_nchw_ms", f"torch {d} NCHW ms (old reference)", "{:.2f}")]
            columns += ([(f"{d}_torch_bf16_ms", f"torch {d} bf16 autocast ms", "{:.2f}")]
                        if any(f"{d}_torch_bf16_ms" in r for r in rows) else [])
            columns += [(f"{d}_ratio", f"{d} minires/torch", "{:.2f}x")]
        elif any(f"{d}_torch_ms" in r for r in rows):
            columns += [(f"{d}_torch_ms", f"torch {d} ms", "{:.2f}"), (f"{d}_ratio", f"{d} minires/torch", "{:.2f}x")]
    if len(devices) > 1:
        columns.append(("speedup", f"{devices[1]} speed-up", "{:.1f}x"))
    if not rows:  # --only is checked against the names above: a run that times nothing writes nothing
        print("nothing timed: nothing written", file=sys.stderr)
        return rows
    table = markdown_table(rows, columns) + f"\n\nCPU steal time during the run: {steal_percent(since)}"
    print()
    print(table)
    written = []
    try:
        os.makedirs(args.out, exist_ok=True)
        write_json(os.path.join(args.out, "bench_kernels.json"),
                   {"header": head, "devices": devices, "ceilings": ceilings, "rows": rows})
        atomic_write_text(os.path.join(args.out, "bench_kernels.md"), "```\n" + head + "\n```\n\n" + table + "\n")
        written += ["bench_kernels.json", "bench_kernels.md"]
        _plot(rows, os.path.join(args.out, "bench_kernels.png"), devices, args.batch)
        written.append("bench_kernels.png")
    except ImportError:
        print("(matplotlib not installed: no PNG)")
    except OSError as exc:  # the folder went away or filled up while timing: the table above is the result
        p.exit(1, f"{p.prog}: error: could not write into --out {args.out}: {exc.strerror or exc}\n")
    print(f"\nwrote {', '.join(written)} to {os.path.abspath(args.out)}")
    return rows


def _plot(rows, path, devices, batch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['kernel']} {r['pass']}" for r in rows]
    y = np.arange(len(rows))
    series = [(f"minires {d}", f"{d}_ms") for d in devices]
    series += [(f"PyTorch {d}", f"{d}_torch_ms") for d in devices if all(f"{d}_torch_ms" in r for r in rows)]
    fig, ax = plt.subplots(figsize=(10, 0.25 * len(rows) * len(series) + 1.5))
    h = 0.8 / len(series)
    for i, (label, key) in enumerate(series):
        ax.barh(y - 0.4 + h * (i + 0.5), [r[key] for r in rows], height=h, label=label)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    if all(r[key] > 0 for _, key in series for r in rows):  # a 0.00 ms time cannot go on a log axis
        ax.set_xscale("log")
    ax.set_xlabel("ms (median, log scale)" if ax.get_xscale() == "log" else "ms (median)")
    ax.set_title(f"minires kernels on {' and '.join(devices)}, batch {batch}" + (" vs PyTorch" if len(series) > len(devices) else ""))
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


if __name__ == "__main__":
    main()
