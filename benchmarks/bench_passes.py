"""The passes between the GEMMs of an airbench94 step: its element-wise ops timed alone, and a per-op step profile.

    python benchmarks/bench_passes.py                       # each op's fast path at its airbench94 shapes
    python benchmarks/bench_passes.py --base /tmp/h5_base   # ... in turns against that checkout's kernel files
    python benchmarks/bench_passes.py --step                # share of each op in one whole training step
    python benchmarks/bench_passes.py --step --base /tmp/h5_base --clock cpu   # steps in turns, both kernel sets

The ops are those of minires.models.airbench at --batch (GELU x7, batch norm x6, max pool x4), on inputs
laid out as the step hands them over: conv outputs are NCHW views of channels-last (NHWC) memory, and
the pools, batch norm and GELU keep that layout (the --step profile prints what each op gets and
returns). Forward and backward are timed separately, the median of --repeats. With --base, the same
kernel files of another checkout (a `git worktree add` of an older commit) load beside this one's, and
the two run in turns (A, B, B, A, ...), so the ratio holds while the shared machine's speed drifts.
The step profile wraps Function.apply and the backward call in this script only (not in the library);
with --base it alternates whole steps between this checkout's fast-path table and the same table with
the four kernel files' classes taken from the base. --clock cpu times the process's CPU time instead of
wall time: on a shared machine it keeps A/B ratios steady where other tenants stretch wall times.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minires as mr  # noqa: E402
from minires import dispatch, parallel  # noqa: E402
from minires.kernels import registry  # noqa: E402
from minires.bench.common import header  # noqa: E402
from minires.kernels.cpu import activation, batchnorm, gelu, pooling  # noqa: E402
from minires.train.memory import keep_freed_memory  # noqa: E402

tensor = importlib.import_module("minires.tensor")  # the module (minires.tensor is also the function)
# NOTE: "cpu" (the process's CPU time, all threads) steadies A/B ratios on a shared machine, where other
# tenants' load stretches wall times by up to 2x; it misses time spent waiting (memory stalls count).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
KERNELS = {"gelu": gelu, "batchnorm": batchnorm, "pooling": pooling, "activation": activation}


def channels_last(shape, rng):
    """(N, C, H, W) float32 standard-normal values: an NCHW view of NHWC memory, as a conv returns."""
    N, C, H, W = shape
    return rng.standard_normal((N, H, W, C), dtype=np.float32).transpose(0, 3, 1, 2)


def table(rows) -> str:
    """Markdown table of dicts (the first row's keys are the columns)."""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows])


def layout(a) -> str:
    if not isinstance(a, np.ndarray) or a.ndim != 4:
        return "-" if not isinstance(a, np.ndarray) else f"{a.ndim}d"
    if a.flags.c_contiguous:
        return "NCHW"
    return "NHWC" if a.transpose(0, 2, 3, 1).flags.c_contiguous else "strided"


def cases(batch: int):
    """(name, class attribute, module key, input shape, forward params, needs_input_grad) of the step's ops."""
    out = [("gelu whiten", "GELUCPU", "gelu", (batch, 24, 31, 31), {}, (True,))]
    for name, c, hw in (("l1", 64, 31), ("l2", 256, 15), ("l3", 256, 7)):
        out.append((f"maxpool2 {name}", "MaxPool2dCPU", "pooling", (batch, c, hw, hw),
                    {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0)}, (True,)))
        for h, tag in ((hw // 2, "a"), (hw // 2, "b")):
            bn = {"training": True, "momentum": 0.4, "eps": 1e-12}
            out.append((f"batchnorm {name}{tag}", "BatchNormCPU", "batchnorm", (batch, c, h, h), bn,
                        (True, False, True)))
            out.append((f"gelu {name}{tag}", "GELUCPU", "gelu", (batch, c, h, h), {}, (True,)))
    out.append(("maxpool3 head", "MaxPool2dCPU", "pooling", (batch, 256, 3, 3),
                {"kernel_size": (3, 3), "stride": (3, 3), "padding": (0, 0)}, (True,)))
    return out


def in_turns(fns, repeats: int, clock) -> list:
    """Median ms of each fn, timed in turns (A, B, B, A, ...) after one warm-up each, on `clock`."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    order = list(range(len(fns)))
    for r in range(repeats):
        for i in (order if r % 2 == 0 else order[::-1]):
            t0 = clock()
            fns[i]()
            times[i].append((clock() - t0) * 1e3)
    return [float(np.median(t)) for t in times]


def load_base(root: str) -> dict:
    """Another checkout's kernel files, loaded as siblings of this one's (their relative imports resolve here)."""
    mods = {}
    for key in KERNELS:
        path = os.path.join(root, "minires", "kernels", "cpu", f"{key}.py")
        spec = importlib.util.spec_from_file_location(f"minires.kernels.cpu._base_{key}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods[key] = mod
    return mods


def op_timers(cls, x, params, needs, rng):
    """(forward(), backward()) closures of one op; backward reuses the last forward's saved state."""
    C = x.shape[1]
    extra = ()
    if cls.__name__.startswith("BatchNorm"):
        extra = (np.ones(C, np.float32), np.zeros(C, np.float32))  # weight, bias
        params = dict(params, running_mean=np.zeros(C, np.float32), running_var=np.ones(C, np.float32))
    state = {}

    def fwd():
        ctx = cls()
        ctx.needs_input_grad = needs
        state["out"] = ctx.forward(x, *extra, **params)
        state["ctx"] = ctx

    fwd()
    out = state["out"]
    g = np.empty_like(out)
    g[...] = rng.standard_normal(out.shape, dtype=np.float32)
    g.flags.writeable = False  # as the graph walk hands it over

    def bwd():
        state["ctx"].backward(g)
    return fwd, bwd


def run_ops(args):
    rng = np.random.default_rng(0)
    base = load_base(args.base) if args.base else None
    rows, totals = [], collections.defaultdict(float)
    for name, attr, key, shape, params, needs in cases(args.batch):
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        x = channels_last(shape, rng)
        if "gelu" in name:
            x *= 1.5  # after batch norm: spread like a BN output
        cur = op_timers(getattr(KERNELS[key], attr), x, params, needs, rng)
        row = {"op": name, "shape": "x".join(map(str, shape))}
        if base is None:
            for i, phase in enumerate(("fwd", "bwd")):
                row[f"{phase} ms"] = f"{in_turns([cur[i]], args.repeats, CLOCKS[args.clock])[0]:.1f}"
                totals[phase] += float(row[f"{phase} ms"])
        else:
            old = op_timers(getattr(base[key], attr), x, params, needs, rng)
            for i, phase in enumerate(("fwd", "bwd")):
                t_new, t_old = in_turns([cur[i], old[i]], args.repeats, CLOCKS[args.clock])
                row[f"{phase} base ms"], row[f"{phase} new ms"] = f"{t_old:.1f}", f"{t_new:.1f}"
                row[f"{phase} new/base"] = f"{t_new / t_old:.2f}"
                totals[f"{phase} base"] += t_old
                totals[f"{phase} new"] += t_new
        rows.append(row)
    total = {"op": "total", "shape": ""}
    for k, v in totals.items():
        total[f"{k} ms"] = f"{v:.1f}"
    if base is not None:
        for phase in ("fwd", "bwd"):
            total[f"{phase} new/base"] = f"{totals[phase + ' new'] / totals[phase + ' base']:.2f}"
    rows.append(total)
    print(table(rows))


def run_step(args):
    """One airbench94 training step, repeated; wall time per op (forward / backward) and layouts."""
    from minires.models.airbench import airbench94
    import minires.nn.functional as F

    rng = np.random.default_rng(0)
    mr.manual_seed(0)
    model = airbench94()
    model.whiten_from(rng.standard_normal((512, 3, 32, 32), dtype=np.float32))
    model.train()
    opt = mr.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.85, nesterov=True)
    x = mr.tensor(rng.standard_normal((args.batch, 3, 32, 32), dtype=np.float32))
    y = mr.tensor(rng.integers(0, 10, args.batch))
    clock = CLOCKS[args.clock]
    layouts = {}
    rec = {"on": False, "cur": collections.defaultdict(float)}
    apply0, call_backward0 = tensor.Function.apply.__func__, tensor._call_backward

    def apply(cls, *inputs, **params):
        t0 = clock()
        out = apply0(cls, *inputs, **params)
        if rec["on"]:
            rec["cur"][(cls.__name__ + shape(out.array, args.by_shape), "fwd")] += clock() - t0
            first = next((t for t in inputs if isinstance(t, tensor.Tensor)), None)
            if first is not None:
                key = (cls.__name__ + shape(out.array, args.by_shape), "fwd")
                layouts.setdefault(key, set()).add(f"{layout(first.array)} -> {layout(out.array)}")
        return out

    def call_backward(ctx, g):
        t0 = clock()
        out = call_backward0(ctx, g)
        if rec["on"]:
            rec["cur"][(type(ctx).__name__ + shape(g, args.by_shape), "bwd")] += clock() - t0
            key = (type(ctx).__name__ + shape(g, args.by_shape), "bwd")
            layouts.setdefault(key, set()).add(layout(g) if isinstance(out, tuple) else f"{layout(g)} -> {layout(out)}")
        return out

    def shape(a, on):
        return f" {'x'.join(map(str, a.shape))}" if on and isinstance(a, np.ndarray) else ""

    tensor.Function.apply = classmethod(apply)
    tensor._call_backward = call_backward
    variants = {"new": dict(registry.FAST)}
    if args.base:  # the same table with this checkout's classes from the 4 kernel files swapped for the base's
        base = load_base(args.base)
        by_module = {KERNELS[k].__name__: base[k] for k in KERNELS}
        variants["base"] = {op: tuple(getattr(by_module[c.__module__], c.__name__) if c.__module__ in by_module
                                      else c for c in classes) for op, classes in registry.FAST.items()}
    times = {v: collections.defaultdict(list) for v in variants}
    walls = {v: [] for v in variants}
    names = list(variants)
    try:
        with parallel.hold_blas():
            for i in range(args.steps + 1):  # steps in turns: new, base, base, new, ...
                for v in (names if i % 2 == 0 else names[::-1]):
                    dispatch.install(variants[v])
                    rec["on"], rec["cur"] = i > 0, collections.defaultdict(float)
                    t0 = clock()
                    opt.zero_grad()
                    loss = F.cross_entropy(model(x), y, label_smoothing=0.2, reduction="sum")
                    loss.backward()
                    opt.step()
                    if i > 0:
                        walls[v].append(clock() - t0)
                        for k, t in rec["cur"].items():
                            times[v][k].append(t)
    finally:
        tensor.Function.apply, tensor._call_backward = classmethod(apply0), call_backward0
        registry.install()
    med = {v: {k: float(np.median(t)) * 1e3 for k, t in times[v].items()} for v in variants}
    wall = {v: float(np.median(walls[v])) * 1e3 for v in variants}
    rows = []
    for (name, phase), ms in sorted(med["new"].items(), key=lambda kv: -kv[1]):
        if ms < 0.0005 * wall["new"]:
            continue
        row = {"op": name, "phase": phase, "ms": f"{ms:.0f}", "share": f"{100 * ms / wall['new']:.1f}%"}
        if args.base:
            old = med["base"].get((name, phase), float("nan"))
            row.update({"base ms": f"{old:.0f}", "new/base": f"{ms / old:.2f}"})
        row["layouts in -> out (4-d only)"] = ", ".join(sorted(layouts.get((name, phase), ())))
        rows.append(row)
    total = {"op": f"step (median, clock {args.clock})", "phase": "", "ms": f"{wall['new']:.0f}",
             "share": f"ops {100 * sum(med['new'].values()) / wall['new']:.0f}%"}
    if args.base:
        total.update({"base ms": f"{wall['base']:.0f}", "new/base": f"{wall['new'] / wall['base']:.2f}"})
    rows.append(total)
    print(table(rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--base", help="another checkout whose kernel files run in turns against this one's")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall", help="what the op timings measure")
    p.add_argument("--only", help="comma-separated substrings of op names to time")
    p.add_argument("--step", action="store_true", help="profile one whole training step per op instead")
    p.add_argument("--by-shape", action="store_true", help="--step: one row per op and output shape")
    p.add_argument("--steps", type=int, default=3, help="timed steps of --step (after one warm-up)")
    args = p.parse_args()
    keep_freed_memory()  # as the Trainer does: freed activations stay in the heap
    print(header(f"minires threads: {parallel.get_num_threads()}, batch {args.batch}, "
                 f"median of {args.repeats if not args.step else args.steps}, clock {args.clock}"
                 + (f", in turns against {args.base}" if args.base else "")))
    print()
    with parallel.hold_blas():
        (run_step if args.step else run_ops)(args)


if __name__ == "__main__":
    main()
