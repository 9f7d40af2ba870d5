"""The same model trained three ways on the same data, in images/s of training: `minires train`, a
hand-written minires loop (no hold_blas), and a PyTorch tutorial-style script after the import rewrite.

    python benchmarks/bench_three_ways.py                      # resnet20 at batch 128, quiet and loaded
    python benchmarks/bench_three_ways.py --no-busy --repeats 5
    python benchmarks/bench_three_ways.py --no-three-ways      # only the small CNN's before/after table

Every run is a fresh process: (a) `python -m minires train --model M ...` (its metrics.jsonl),
(b) the loop below (minires.data's loader, SGD, F.cross_entropy, backward, step), (c)
benchmarks/torch_style/tutorial_train.py rewritten by ../shared/tools/torch_rewrite.py
(torchvision ImageFolder, transforms.Compose, DataLoader(num_workers=2)). Each does --epochs
epochs over --limit-train images with the same augmentation (random crop with 4-pixel padding,
flip, normalize); a run's rate is the median of its epochs after the first (warm-up), and a row is
the median over --repeats runs, timed in turns (the order reverses every round). "busy" rows run
beside one more process spinning on a core (a user's loaded machine). The before/after table
times (b) for a small CNN at batch 64 on this checkout and on a copy whose minires/parallel.py is
that of --before (the commit before split held BLAS itself), with and without hold_blas().

Data: the CIFAR-10 JPEG copy at --data (read only; the decoded arrays are cached under
$MINIRES_DATA, else a temporary folder), or synthetic 32x32 images when it is absent.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The minires being timed: this checkout, or the --before copy a parent run made (child runs only).
sys.path.insert(0, os.environ.get("BENCH_MINIRES_ROOT") or ROOT)

import numpy as np  # noqa: E402

import minires as mr  # noqa: E402
from minires import nn, parallel  # noqa: E402
from minires import functional as F  # noqa: E402
from minires.data import CIFAR10_MEAN, CIFAR10_STD, DataLoader  # noqa: E402
from minires.data import transforms as T  # noqa: E402
from minires.train.datasets import load_datasets  # noqa: E402
from minires.bench.common import cpu_steal, header, markdown_table, steal_percent  # noqa: E402

REWRITE = os.path.join(ROOT, "..", "shared", "tools", "torch_rewrite.py")
TUTORIAL = os.path.join(HERE, "torch_style", "tutorial_train.py")
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def small_cnn():
    """The tutorial script's Net in minires: conv-BN-ReLU at 32, 64, 128 channels, two max-pools, a linear head."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def hand_written_loop(args) -> list:
    """(b): what a user writes with minires's own pieces, without hold_blas(); images/s of each epoch."""
    train_set, _ = load_datasets(args.data, args.limit_train, 1, seed=0)
    augment = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(),
                         T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, seed=0, transform=augment)
    mr.manual_seed(0)
    model = small_cnn() if args.model == "small_cnn" else mr.models.get(args.model)
    optimizer = mr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rates = []
    with parallel.hold_blas() if args.hold else contextlib.nullcontext():  # only the before/after rows hold
        for epoch in range(args.epochs):
            model.train()
            seen, start = 0, time.perf_counter()
            for x, y in loader:
                loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                seen += len(y)
            rates.append(seen / (time.perf_counter() - start))
    return rates


# ---- the parent: runs in turns -------------------------------------------------------------------

def run_child(way, args, tmp, root=None, hold=False, model=None, batch=None) -> tuple:
    """One fresh process of `way` on the minires under `root` (default: the snapshot of this checkout);
    (the median, the best) images/s of its epochs after the first."""
    root, model, batch = root or args.after, model or args.model, batch or args.batch_size
    env = dict(os.environ, PYTHONPATH=root, BENCH_MINIRES_ROOT=root, MINIRES_DATA=args.cache)
    common = ["--data", args.data, "--limit-train", str(args.limit_train), "--epochs", str(args.epochs),
              "--batch-size", str(batch)]
    out = tempfile.mkdtemp(dir=tmp)
    result = os.path.join(out, "result.json")
    if way == "trainer":
        cmd = [sys.executable, "-m", "minires", "train", "--model", model, *common, "--limit-test", "100",
               "--no-progress", "--out", os.path.join(out, "run")]
    elif way == "loop":
        cmd = [sys.executable, __file__, "--child", "--model", model, *common, "--json", result]
        cmd += ["--hold"] if hold else []
    else:
        cmd = [sys.executable, args.rewritten, "--model", model, *common, "--limit-test", "100", "--json", result]
    proc = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{way} failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    if way == "trainer":
        with open(os.path.join(out, "run", "metrics.jsonl")) as f:
            rates = [json.loads(line)["images_per_s"] for line in f]
    else:
        with open(result) as f:
            rates = json.load(f)["images_per_s"]
    shutil.rmtree(out, ignore_errors=True)
    return statistics.median(rates[1:] or rates), max(rates[1:] or rates)


@contextlib.contextmanager
def busy_core(on: bool):
    """One more process spinning on a core while the block runs (it also stops itself after 20 minutes)."""
    if not on:
        yield
        return
    spin = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 1200\nwhile time.time() < end: pass"])
    try:
        yield
    finally:
        spin.kill()
        spin.wait()


def in_turns(variants, repeats: int) -> list:
    """Each variant's [(median, best) of a run], the variants run in turns, the order reversed every round."""
    runs = [[] for _ in variants]
    order = list(range(len(variants)))
    for r in range(repeats):
        for i in (order if r % 2 == 0 else order[::-1]):
            runs[i].append(variants[i][1]())
            print(f"  round {r + 1}: {variants[i][0]}: {runs[i][-1][0]:.0f} img/s", file=sys.stderr, flush=True)
    return runs


def table(variants, runs, note) -> str:
    """A row per variant: the median over runs, their range, the best epoch of any run, and the ratios."""
    medians = [statistics.median(m for m, _ in r) for r in runs]
    bests = [max(b for _, b in r) for r in runs]
    rows = [{"way": name, "img/s": f"{m:.0f}", "runs": f"{min(x for x, _ in r):.0f}-{max(x for x, _ in r):.0f}",
             "vs top": f"{m / max(medians):.2f}", "best epoch": f"{b:.0f}", "best vs top": f"{b / max(bests):.2f}"}
            for (name, _), r, m, b in zip(variants, runs, medians, bests)]
    keys = ("way", "img/s", "runs", "vs top", "best epoch", "best vs top")
    return note + "\n\n" + markdown_table(rows, [(k, k, None) for k in keys])


def snapshot(tmp: str, name: str, parallel_at: str | None = None) -> str:
    """A copy of this checkout's minires (so that edits during the run change nothing), with
    minires/parallel.py as it was at commit `parallel_at` if given; the copy's root folder."""
    root = os.path.join(tmp, name)
    shutil.copytree(os.path.join(ROOT, "minires"), os.path.join(root, "minires"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    if parallel_at:
        old = subprocess.run(["git", "-C", ROOT, "show", f"{parallel_at}:minires/parallel.py"],
                             capture_output=True, text=True)
        if old.returncode != 0:
            raise SystemExit(f"--before {parallel_at}: {old.stderr.strip()}")
        with open(os.path.join(root, "minires", "parallel.py"), "w") as f:
            f.write(old.stdout)
    return root


def checkout_note() -> str:
    """The commit measured, and the files under minires/ that differ from it (others' work in progress)."""
    git = ["git", "-C", ROOT]
    head = subprocess.run(git + ["log", "-1", "--format=%h"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["status", "--porcelain", "--", "minires"], capture_output=True, text=True).stdout
    changed = [line[3:] for line in dirty.splitlines()]
    return f"minires: commit {head or '?'}" + (f", with uncommitted changes in {', '.join(changed)}" if changed else "")


def synthetic_data(tmp: str, per_class: int) -> str:
    """An image folder of random 32x32 PNGs (train and test), for a machine without the JPEG copy."""
    from PIL import Image
    rng = np.random.default_rng(0)
    root = os.path.join(tmp, "synthetic")
    for split, n in (("train", per_class), ("test", 10)):
        for c in CLASSES:
            os.makedirs(os.path.join(root, split, c))
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    os.path.join(root, split, c, f"{i:04d}.png"))
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 image folders (train/, test/)")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit-train", type=int, default=1280)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-busy", dest="busy", action="store_false", help="skip the rows beside a spinning core")
    p.add_argument("--no-three-ways", dest="three_ways", action="store_false")
    p.add_argument("--no-before-after", dest="before_after", action="store_false")
    p.add_argument("--before", default="972f90c", help="commit of the parallel.py before the fix")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # run (b) here and write --json
    p.add_argument("--hold", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        with open(args.json, "w") as f:
            json.dump({"images_per_s": hand_written_loop(args)}, f)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_three_ways_") as tmp:
        args.cache = os.environ.get("MINIRES_DATA") or os.path.join(tmp, "cache")
        if os.path.isdir(os.path.join(args.data, "train")):
            data_note = f"data: {os.path.abspath(args.data)}, {args.limit_train} training images"
        else:
            args.data = synthetic_data(tmp, -(-args.limit_train // len(CLASSES)))
            data_note = f"data: SYNTHETIC random 32x32 PNGs ({args.limit_train} training images; no {args.data})"
        args.after = snapshot(tmp, "after")
        args.rewritten = os.path.join(tmp, "tutorial_train.py")
        subprocess.run([sys.executable, REWRITE, TUTORIAL, args.rewritten], check=True)
        try:
            import threadpoolctl
            blas = [f"{i['internal_api']} {i['version']} ({i['threading_layer']}, {i['num_threads']} threads)"
                    for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        except ImportError:
            blas = ["threadpoolctl not installed: BLAS threads unknown and not held"]
        print(header(f"BLAS: {', '.join(blas)}; minires threads: {parallel.get_num_threads()}\n"
                     f"{checkout_note()}\n{data_note}; "
                     f"{args.epochs} epochs per run, the median of epochs 2+, median of {args.repeats} runs "
                     f"in turns"), flush=True)
        load, steal = os.getloadavg()[0], cpu_steal()
        loads = ["quiet", "busy"] if args.busy else ["quiet"]
        if args.three_ways:
            variants = [("(a) minires train", lambda: run_child("trainer", args, tmp)),
                        ("(b) hand-written minires loop", lambda: run_child("loop", args, tmp)),
                        ("(c) tutorial-style script, rewritten", lambda: run_child("torch_style", args, tmp))]
            for state in loads:
                with busy_core(state == "busy"):
                    results = in_turns(variants, args.repeats)
                print(table(variants, results, f"\n{args.model}, batch {args.batch_size}, {state}"), flush=True)
        if args.before_after:
            old = snapshot(tmp, "before", args.before)
            small = dict(model="small_cnn", batch=64)
            variants = [(f"(b) before ({args.before}), no hold", lambda: run_child("loop", args, tmp, old, **small)),
                        ("(b) before, with hold_blas()", lambda: run_child("loop", args, tmp, old, True, **small)),
                        ("(b) after, no hold", lambda: run_child("loop", args, tmp, **small)),
                        ("(b) after, with hold_blas()", lambda: run_child("loop", args, tmp, None, True, **small)),
                        ("(c) tutorial-style, after", lambda: run_child("torch_style", args, tmp, **small))]
            for state in loads:
                with busy_core(state == "busy"):
                    results = in_turns(variants, args.repeats)
                print(table(variants, results, f"\nsmall CNN, batch 64, {state}: before/after the fix"), flush=True)
        print(f"\nload average (1 min) {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
              f"steal time {steal_percent(steal)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
