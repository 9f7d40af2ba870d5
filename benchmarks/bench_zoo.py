"""Training steps of common CIFAR architectures (benchmarks/zoo_models.py), minires against PyTorch, in turns.

    python benchmarks/bench_zoo.py                          # every default model, batch 64 (~10 min on 2 quiet cores)
    python benchmarks/bench_zoo.py --quick                  # batch 16, 1 timed step, 1 round: a smoke run
    python benchmarks/bench_zoo.py --models mobilenetv2,resnext29_32x4d --rounds 5

One step is forward, cross entropy, backward and SGD (momentum 0.9, weight decay 5e-4) in float32. The models are
written once, in PyTorch style, in zoo_models.py: PyTorch imports that file as it stands; minires runs the same
source after `rewrite_imports` turns its import lines to minires's (the rewrite a PyTorch script goes through,
done here so that the benchmark needs nothing outside this checkout). Each run (minires; PyTorch float32
channels_last; PyTorch float32 NCHW) is a fresh process, the runs in turns, the order flipped each round; a run's
time is the median of --steps steps after --warmup, and the table gives each run's median over --rounds. The
reference is PyTorch's faster layout of the two; the ratio is minires's time over it; below the table stand the
geometric mean of the ratios and the worst model. Both libraries run --threads threads; minires holds BLAS at one
thread (hold_blas), as `minires train` does. --clock cpu times each step by the process's CPU time instead of the
wall clock: on a shared machine at --threads 1 that leaves out the time other tenants held the core.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires import parallel  # noqa: E402
from minires.bench.common import (TORCH_RUNS, cpu_steal, faster_layout, header, markdown_table,  # noqa: E402
                                  median_ms, steal_percent, to_torch_layout, torch_or_none, torch_reference_label,
                                  write_json)

ZOO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo_models.py")
DEFAULT_MODELS = ("vgg11,resnet18,preact_resnet18,densenet_bc100,mobilenetv2,shufflenetv2,efficientnet_b0,"
                  "regnetx_200mf,resnext29_32x4d,dla")
ONE_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")  # set to 1 at --threads 1
TORCH_LIBS = ("torch_cl", "torch_nchw")  # float32 runs only; the faster one is the reference
# An import line naming torch or one of its submodules (not torchvision): indent, keyword, submodule, the rest.
_IMPORT = re.compile(r"^([ \t]*)(import|from)[ \t]+torch((?:\.\w+)*)(?![\w.])(.*)$", re.M)


def rewrite_imports(src: str) -> str:
    """`import torch` -> `import minires as torch`, `import torch.X as Y` -> `import minires.X as Y`,
    `from torch.X import Y` -> `from minires.X import Y`; every other line is left as it is."""
    def line(m):
        indent, keyword, sub, rest = m.groups()
        if keyword == "import" and not rest.lstrip().startswith("as "):
            if sub:  # `import torch.nn` binds `torch`: not a form zoo_models.py uses
                raise ValueError(f"rewrite_imports: give `import torch{sub}` an `as` name: {m.group(0).strip()!r}")
            return f"{indent}import minires as torch{rest}"
        return f"{indent}{keyword} minires{sub}{rest}"
    return _IMPORT.sub(line, src)


def load_zoo(lib: str = "mr") -> types.ModuleType:
    """zoo_models.py as a module: under PyTorch as written ("torch"), under minires after rewrite_imports ("mr")."""
    with open(ZOO) as f:
        src = f.read()
    if lib == "mr":
        src = rewrite_imports(src)
    elif lib != "torch":
        raise ValueError(f"load_zoo: lib must be 'mr' or 'torch', got {lib!r}")
    module = types.ModuleType(f"zoo_models_{lib}", f"benchmarks/zoo_models.py under {lib}")
    module.__file__ = ZOO
    exec(compile(src, ZOO, "exec"), module.__dict__)
    return module


def cpu_median_ms(fn, repeats: int, warmup: int) -> float:
    """Median CPU time of this process (all its threads) over fn() calls, in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return statistics.median(times)


def run_one(lib: str, name: str, batch: int, steps: int, warmup: int, threads: int, clock: str = "wall") -> dict:
    """Time `steps` training steps of zoo model `name` in this process -> {"ms": median, "threads": ...};
    clock "cpu" times the process's CPU time instead of the wall clock."""
    zoo = load_zoo("mr" if lib == "mr" else "torch")
    torch, F = zoo.torch, zoo.F
    if name not in zoo.MODELS:
        raise ValueError(f"bench_zoo: unknown model {name!r}; known: {', '.join(zoo.MODELS)}")
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
    y = torch.tensor(rng.integers(0, 10, batch))
    torch.manual_seed(0)
    model = zoo.MODELS[name]().train()
    if lib == "mr":
        parallel.set_num_threads(threads)
        hold = parallel.hold_blas()  # BLAS at one thread, the kernels split over the cores: as `minires train`
        used = parallel.get_num_threads()
    else:
        torch.set_num_threads(threads)
        model, x = to_torch_layout(torch, TORCH_RUNS[lib][0], model, x)
        hold = contextlib.nullcontext()
        used = torch.get_num_threads()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with hold:
        ms = (median_ms if clock == "wall" else cpu_median_ms)(step, repeats=steps, warmup=warmup)
    return {"lib": lib, "model": name, "batch": batch, "ms": ms, "threads": used,
            "params": sum(p.numel() for p in model.parameters())}


def summarise(name, results) -> dict:
    """One model's row from {run: [child results]}: each run's median ms over rounds, the reference (PyTorch's
    faster layout) and minires's time over it."""
    med = {lib: statistics.median(r["ms"] for r in rs) for lib, rs in results.items()}
    row = {"model": name, "params": results["mr"][0]["params"], "mr_ms": med["mr"],
           "rounds": {lib: [round(r["ms"], 1) for r in rs] for lib, rs in results.items()}}
    torch_ms = {TORCH_RUNS[lib][0]: med[lib] for lib in TORCH_LIBS if lib in med}
    if torch_ms:
        layout, ms = faster_layout(torch_ms)
        threads = next(rs[0]["threads"] for lib, rs in results.items() if lib != "mr")
        row.update(torch_ms=ms, layout=layout, torch_threads=threads, ratio=med["mr"] / ms, torch_layouts=torch_ms)
    return row


def spread(values) -> str:
    """max/min - 1 of a run's per-round times, as a percentage (how far the rounds disagree)."""
    return f"{100 * (max(values) / min(values) - 1):.0f}%"


def summary_lines(rows) -> list:
    """The geometric mean of the ratios and the worst model (empty without PyTorch)."""
    rated = [r for r in rows if "ratio" in r]
    if not rated:
        return []
    geo = math.exp(sum(math.log(r["ratio"]) for r in rated) / len(rated))
    worst = max(rated, key=lambda r: r["ratio"])
    return [f"geometric mean of minires / PyTorch time over {len(rated)} models: {geo:.2f}x",
            f"worst: {worst['model']} {worst['ratio']:.2f}x"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated names of zoo_models.MODELS")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=2, help="timed steps per run (their median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="processes per run, the runs in turns")
    p.add_argument("--threads", type=int, default=parallel.get_num_threads(),
                   help="threads of each library (default: minires's, the usable cores)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: each step's process CPU time (with --threads 1 on a shared machine, it leaves out the "
                        "time other tenants held the core; with more threads it sums them, spin-waits included)")
    p.add_argument("--quick", action="store_true", help="batch 16, 1 step after 1 warm-up, 1 round")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--child", nargs=2, metavar=("LIB", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.warmup, args.rounds = 16, 1, 1, 1
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.batch, args.steps, args.warmup, args.threads,
                                 args.clock)))
        return
    if min(args.batch, args.rounds, args.steps, args.threads) < 1 or args.warmup < 0:
        p.error("--batch, --rounds, --steps and --threads must be >= 1 and --warmup >= 0")
    names = [n for n in args.models.split(",") if n]
    known = load_zoo("mr").MODELS
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        p.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    torch = None if args.no_torch else torch_or_none()
    if torch is not None:
        torch.set_num_threads(args.threads)  # so that the header's PyTorch thread count is the children's
    libs = ["mr"] + (list(TORCH_LIBS) if torch is not None else [])
    extra = ""
    if torch is not None:
        extra += (f"PyTorch runs: {'; '.join(torch_reference_label(TORCH_RUNS[lib][0]) for lib in TORCH_LIBS)}; "
                  f"eager, torch.set_num_threads({args.threads}); the reference is the faster layout\n")
    extra += f"minires: parallel.set_num_threads({args.threads}), BLAS held at 1 thread (hold_blas)"
    extra += (f"; --threads 1: the children run with {'=1, '.join(ONE_THREAD_ENV)}=1\n" if args.threads == 1 else "\n")
    clock = "process CPU time" if args.clock == "cpu" else "wall time"
    head = header(extra + f"training step (forward, cross entropy, backward, SGD momentum 0.9) float32, batch "
                  f"{args.batch}, {clock}, median of {args.steps} steps after {args.warmup} warm-up, each run in a "
                  f"fresh process; {args.rounds} rounds, the runs in turns ({', '.join(libs)}, then reversed, ...), "
                  f"median over rounds")
    print(head, flush=True)
    # NOTE: parallel.set_num_threads(1) gives BLAS its own threads back (one minires thread, BLAS threading its
    # GEMMs), so a one-thread run fixes BLAS (and OpenMP) at one thread from the start, for both libraries alike.
    child_env = dict(os.environ, **({v: "1" for v in ONE_THREAD_ENV} if args.threads == 1 else {}))
    since = cpu_steal()
    rows = []
    for name in names:
        results = {lib: [] for lib in libs}
        for r in range(args.rounds):  # in turns, the order flipped each round: drift hits every run alike
            for lib in (libs if r % 2 == 0 else libs[::-1]):
                cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, name, "--batch", str(args.batch),
                       "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                       "--clock", args.clock]
                out = subprocess.run(cmd, capture_output=True, text=True, env=child_env)
                if out.returncode != 0:
                    print(out.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"bench_zoo: {lib} {name} failed")
                results[lib].append(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append(summarise(name, results))
        print(f"  {name}: " + ", ".join(f"{lib} {statistics.median(x['ms'] for x in rs):.0f} ms"
                                        for lib, rs in results.items()), flush=True)
    columns = [("model", "model", None), ("params", "parameters", "{:,}"), ("mr_ms", "minires ms", "{:.0f}")]
    if torch is not None:
        columns += [("torch_ms", "PyTorch ms", "{:.0f}"), ("layout", "PyTorch layout", None),
                    ("torch_threads", "threads", None), ("ratio", "minires / PyTorch time", "{:.2f}x"),
                    ("other", "PyTorch other layout ms", "{:.0f}")]
    columns.append(("spread", "spread over rounds (mr; PyTorch)", None))
    for row in rows:
        row["spread"] = "; ".join(spread(row["rounds"][lib]) for lib in libs)
        if "torch_layouts" in row:
            row["other"] = next(ms for layout, ms in row["torch_layouts"].items() if layout != row["layout"])
    table = "\n".join([markdown_table(rows, columns), ""] + summary_lines(rows)
                       + [f"CPU steal time during the run: {steal_percent(since)}"])
    print()
    print(table)
    write_json(os.path.join(args.out, "bench_zoo.json"), {"header": head, "rows": rows})
    with open(os.path.join(args.out, "bench_zoo.md"), "w") as f:
        f.write("```\n" + head + "\n```\n\n" + table + "\n")


if __name__ == "__main__":
    main()
