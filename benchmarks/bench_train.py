"""One training step (forward, backward, SGD) of resnet20, resnet18 (small-image stem) and resnet9.

    python benchmarks/bench_train.py                    # batch 128, all three, each in its own process
    python benchmarks/bench_train.py --models resnet20 --steps 5

Reports images/s (median over steps after a warm-up) and the peak RSS of a process that ran only
that model, for minires and, when importable, PyTorch running the same architecture built here.
PyTorch runs in float32 channels_last (model and input .to(memory_format=torch.channels_last)) and in
float32 NCHW (the old reference); the faster of the two is the reference every ratio is to. On a CPU
with AVX512-BF16 or AMX it also runs bf16 autocast (channels_last) as a reference row. Both libraries
run --threads threads (parallel.set_num_threads, torch.set_num_threads). Each run repeats --rounds
times, in turns with the others, each time in a fresh process: images/s is the median over the
rounds, the peak RSS the largest.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's minires first
from minires import parallel  # noqa: E402
from minires.bench.common import (TORCH_RUNS, cpu_steal, faster_layout, header, markdown_table,  # noqa: E402
                                  median_ms, resolve_device, scaled_step, steal_percent, to_torch_layout,
                                  torch_or_none, torch_reference_label, torch_runs, write_json)


# ---- the same architectures in PyTorch (reference only; never imported by the library) ------------------

def torch_model(name: str, num_classes: int = 10):
    import torch.nn as nn

    def conv_bn(cin, cout, stride=1, k=3):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, stride), nn.ReLU(inplace=True), *conv_bn(cout, cout))
            self.short = (nn.Sequential(*conv_bn(cin, cout, stride, k=1))
                          if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return (self.body(x) + self.short(x)).relu()

    def stages(widths, blocks, stem):
        layers, cin = [], stem
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(Basic(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        return layers, cin

    if name in ("resnet20", "resnet18"):
        widths, blocks, stem = (([16, 32, 64], [3, 3, 3], 16) if name == "resnet20"
                                else ([64, 128, 256, 512], [2, 2, 2, 2], 64))
        body, cout = stages(widths, blocks, stem)
        return nn.Sequential(*conv_bn(3, stem), nn.ReLU(inplace=True), *body, nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(cout, num_classes))
    if name == "resnet9":
        def cbr(cin, cout, pool=False):
            return nn.Sequential(*conv_bn(cin, cout), nn.ReLU(inplace=True), *([nn.MaxPool2d(2)] if pool else []))

        class Res(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.f = nn.Sequential(cbr(c, c), cbr(c, c))

            def forward(self, x):
                return x + self.f(x)

        class Scale(nn.Module):
            def forward(self, x):
                return x * 0.125
        return nn.Sequential(cbr(3, 64), cbr(64, 128, True), Res(128), cbr(128, 256, True), cbr(256, 512, True),
                             Res(512), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512, num_classes), Scale())
    raise ValueError(name)



def run_one(lib: str, name: str, batch: int, steps: int, warmup: int, device: str = "cpu",
            amp: bool = False, threads: int = 0) -> dict:
    """Time `steps` training steps in this process; returns images/s and peak RSS.

    lib: "mr", or a PyTorch run of TORCH_RUNS ("torch_cl", "torch_nchw", "torch_bf16"); threads > 0 sets
    the library's thread count.

    On a GPU each step ends with a device synchronisation, so the time is the step's whole wall time
    (host work, launches and the GPU's own time) and images/s is what a training loop would see.
    With `amp`, both libraries run their autocast (float16 GEMMs) with a dynamic loss scaler.
    """
    import resource
    lib = "torch_nchw" if lib == "torch" else lib  # the old name of the PyTorch run (a parent started before)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    if lib in TORCH_RUNS:
        import torch
        layout, bf16 = TORCH_RUNS[lib]
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(0)
        dev = torch.device(device)
        if dev.type == "cuda":  # like for like: cupy.matmul does not use TF32, so float32 PyTorch must not
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
        model, xt = to_torch_layout(torch, layout, torch_model(name).train().to(dev), torch.tensor(x, device=dev))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        yt = torch.tensor(y, device=dev)
        scaler = torch.amp.GradScaler(dev.type) if amp else None
        dtype = torch.bfloat16 if bf16 else torch.float16

        def loss():
            opt.zero_grad(set_to_none=True)
            with (torch.autocast(dev.type, dtype=dtype) if amp or bf16 else contextlib.nullcontext()):
                return torch.nn.functional.cross_entropy(model(xt), yt)
        sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else None
        threads = contextlib.nullcontext()
    else:
        import minires as mr
        import minires.functional as F
        from minires import backend, models, optim
        if threads:
            parallel.set_num_threads(threads)
        mr.manual_seed(0)
        kw = {"small_input": True} if name == "resnet18" else {}
        model = models.get(name, num_classes=10, **kw).train().to(device)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        xt, yt = mr.tensor(x, device=device), mr.tensor(y, device=device)
        scaler = optim.GradScaler() if amp else None

        def loss():
            opt.zero_grad()
            with (mr.amp.autocast() if amp else contextlib.nullcontext()):
                return F.cross_entropy(model(xt), yt)
        sync = None
        if device.startswith("cuda"):
            gpu = backend.cupy_module().cuda.Device(int(device.split(":")[1]))
            sync = gpu.synchronize
        threads = mr.parallel.hold_blas()  # BLAS at one thread, the kernels split over the cores: as `minires train`
    with threads:
        ms = median_ms(scaled_step(loss, opt, scaler), repeats=steps, warmup=warmup, sync=sync)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"lib": lib, "model": name, "batch": batch, "ms": ms, "img_s": batch / (ms / 1e3), "peak_rss_mb": peak_mb,
            "threads": torch.get_num_threads() if lib in TORCH_RUNS else parallel.get_num_threads()}


def _summarise(name, runs, libs) -> dict:
    """One model's JSON row: each run's median img/s over rounds, largest RSS, rounds, and the ratios to
    the reference (the faster float32 layout) and to the old NCHW reference."""
    res = {lib: {"img_s": statistics.median(r["img_s"] for r in rs), "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                 "rounds": [round(r["img_s"], 1) for r in rs]} for lib, rs in runs.items()}
    row = {"model": name, "mr_img_s": res["mr"]["img_s"], "mr_rss": res["mr"]["peak_rss_mb"],
           "mr_rounds": res["mr"]["rounds"]}
    torch_runs = [lib for lib in libs if lib != "mr"]
    if torch_runs:
        float32 = {TORCH_RUNS[lib][0]: 1e3 / res[lib]["img_s"] for lib in torch_runs if not TORCH_RUNS[lib][1]}
        layout, _ = faster_layout(float32)
        ref = next(lib for lib in torch_runs if TORCH_RUNS[lib] == (layout, False))
        row.update(torch=res, reference=ref, reference_layout=layout, ratio=res["mr"]["img_s"] / res[ref]["img_s"])
        if "torch_nchw" in res:
            row["ratio_nchw"] = res["mr"]["img_s"] / res["torch_nchw"]["img_s"]
    return row


def _table_rows(rows, libs) -> list:
    """One table row per (model, run): its img/s, RSS, speed against the model's reference, its rounds."""
    out = []
    for row in rows:
        for lib in libs:
            if lib == "mr":
                d = {"img_s": row["mr_img_s"], "peak_rss_mb": row["mr_rss"], "rounds": row["mr_rounds"]}
                label = "minires"
            else:
                d = row["torch"][lib]
                label = torch_reference_label(*TORCH_RUNS[lib]) + (" = reference" if lib == row["reference"] else "")
            speed = d["img_s"] / row["torch"][row["reference"]]["img_s"] if "reference" in row else None
            out.append({"model": row["model"], "library": label, "img_s": d["img_s"], "rss": d["peak_rss_mb"],
                        "speed": speed, "rounds": ", ".join(f"{v:.1f}" for v in d["rounds"])})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet20,resnet18,resnet9")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="processes per run, the runs in turns")
    p.add_argument("--threads", type=int, default=parallel.get_num_threads(),
                   help="threads of each library (default: minires's, the usable cores)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (PyTorch on the same device)")
    p.add_argument("--amp", action="store_true", help="float16 autocast and loss scaling in both libraries")
    p.add_argument("--layouts", default=None, help="PyTorch float32 layouts to time, e.g. channels_last "
                   "(default channels_last,NCHW on cpu; channels_last on cuda)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--child", nargs=2, metavar=("LIB", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], args.batch, args.steps, args.warmup, args.device,
                                 args.amp, args.threads)))
        return
    if args.rounds < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--rounds, --steps and --threads must be >= 1 and --warmup >= 0")
    torch = None if args.no_torch else torch_or_none()
    device, extra, torch = resolve_device(p, args.device, torch)
    runs = torch_runs(p, args, device, torch)
    libs = ["mr"] + [name for name, _, _ in runs]
    if device.startswith("cuda"):
        extra += ("PyTorch: TF32 off (torch.backends.cuda.matmul / cudnn allow_tf32 = False), cudnn.benchmark on, "
                  "eager (no torch.compile); minires: cupy.matmul (no TF32) and kernels.cu\n")
    if torch is not None:
        extra += (f"PyTorch runs: {'; '.join(torch_reference_label(l, b) for _, l, b in runs)}; eager, "
                  f"torch.set_num_threads({args.threads}); the reference is the faster float32 layout; ratios are to it\n")
    extra += f"minires: parallel.set_num_threads({args.threads}), BLAS held at 1 thread (hold_blas)\n"
    head = header(extra + f"training step (forward, backward, SGD nesterov{', autocast float16' if args.amp else ''}) "
                  f"on {device}, batch {args.batch}, "
                  f"median of {args.steps} steps after {args.warmup} warm-up, each run in a fresh process; "
                  f"{args.rounds} rounds" + (f", the runs in turns ({', '.join(libs)}, then reversed, ...)"
                                             if len(libs) > 1 else "") + ", median over rounds")
    print(head, flush=True)
    since = cpu_steal()
    rows = []
    for name in args.models.split(","):
        results = {lib: [] for lib in libs}
        for r in range(args.rounds):  # in turns, the order flipped each round: drift hits every run alike
            for lib in (libs if r % 2 == 0 else libs[::-1]):
                cmd = [sys.executable, os.path.abspath(__file__), "--child", lib, name, "--batch", str(args.batch),
                       "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", device,
                       "--threads", str(args.threads)]
                cmd += ["--amp"] if args.amp else []
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(out.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"{lib} {name} failed")
                results[lib].append(json.loads(out.stdout.strip().splitlines()[-1]))
        row = _summarise(name, results, libs)
        rows.append(row)
        print(f"  {name}: " + ", ".join(f"{lib} {statistics.median(r['img_s'] for r in rs):.1f} img/s"
                                        for lib, rs in results.items()), flush=True)
    columns = [("model", "model", None), ("library", "library", None), ("img_s", "img/s", "{:.1f}"),
               ("rss", "peak RSS MB", "{:.0f}")]
    if len(libs) > 1:
        columns.append(("speed", "speed / reference", "{:.2f}x"))
    columns.append(("rounds", "img/s per round", None))
    table = markdown_table(_table_rows(rows, libs), columns)
    if len(libs) > 1:
        table += "\n\n" + "\n".join(
            f"{r['model']}: minires / PyTorch float32 {r['reference_layout']} (the reference) speed {r['ratio']:.2f}x"
            + (f"; against the old NCHW reference {r['ratio_nchw']:.2f}x" if "ratio_nchw" in r else "") for r in rows)
    table += f"\n\nCPU steal time during the run: {steal_percent(since)}"
    print()
    print(table)
    write_json(os.path.join(args.out, "bench_train.json"), {"header": head, "rows": rows})
    with open(os.path.join(args.out, "bench_train.md"), "w") as f:
        f.write("```\n" + head + "\n```\n\n" + table + "\n")


if __name__ == "__main__":
    main()
