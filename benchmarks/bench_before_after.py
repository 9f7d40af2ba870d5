"""A training step of this checkout against an earlier commit, timed in turns (a refactor's speed check).

    python benchmarks/bench_before_after.py --before 63d6d13                 # ResNet-20, batch 64
    python benchmarks/bench_before_after.py --before 63d6d13 --model resnet9 --batch 32 --rounds 8

Each round runs one child process per side (the earlier commit first, then this checkout), each timing
--steps SGD steps after two warm-up steps. Alternating processes spreads the machine's drift over both
sides; the table gives the median of the rounds and the ratio new / before (below 1: faster now).
The earlier commit is exported with `git archive` into a temporary folder, never into this checkout.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's minires first
from minires.bench.common import header, markdown_table  # noqa: E402

CHILD = """
import sys, time
import minires as mr
from minires import functional as F, optim
mr.manual_seed(0)
model = mr.models.get({model!r})
opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
x, y = mr.randn({batch}, 3, 32, 32), mr.randint(0, 10, ({batch},))
def step():
    opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
for _ in range(2):
    step()
start = time.perf_counter()
for _ in range({steps}):
    step()
print((time.perf_counter() - start) / {steps} * 1000)
"""


def run(root: str, code: str) -> float:
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"bench_before_after: the step failed in {root}: {out.stderr.strip()[-500:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--before", required=True, help="the earlier commit (any git revision)")
    p.add_argument("--model", default="resnet20", help="a name of minires.models.get")
    p.add_argument("--batch", type=int, default=64, help="images per step")
    p.add_argument("--steps", type=int, default=10, help="timed steps per process")
    p.add_argument("--rounds", type=int, default=6, help="processes per side, alternating")
    args = p.parse_args(argv)
    for name in ("batch", "steps", "rounds"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    code = CHILD.format(model=args.model, batch=args.batch, steps=args.steps)
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.before], capture_output=True)
        if archive.returncode:
            p.error(f"--before {args.before}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", old], input=archive.stdout, check=True)
        times = {"before": [], "new": []}
        for _ in range(args.rounds):
            times["before"].append(run(old, code))
            times["new"].append(run(ROOT, code))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(header())
    print(f"{args.model}, batch {args.batch}, {args.steps} steps per process, {args.rounds} rounds in turns; "
          f"before = {args.before}")
    rows = [{"side": k, "median": med[k], "rounds": " ".join(f"{t:.0f}" for t in v)} for k, v in times.items()]
    print(markdown_table(rows, [("side", "side", "{}"), ("median", "median ms/step", "{:.1f}"),
                                ("rounds", "rounds (ms)", "{}")]))
    print(f"new / before: {med['new'] / med['before']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
