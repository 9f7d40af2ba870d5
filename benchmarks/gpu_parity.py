"""Stage 5 of gpu_check.sh: a GPU training run's per-epoch curve against the CPU's on the same data.

    python benchmarks/gpu_parity.py --cpu benchmarks/gpu_parity_cpu.jsonl --gpu RUN/metrics.jsonl --out DIR

Both runs: `minires train --model resnet20 --data .gpu-data --epochs 2` (same seed, same data order),
the CPU's recorded on the 2-core machine (see RESULTS.md), the GPU's in the check. float32 on two
devices sums in different orders, and those differences grow over a run, so the curves are compared
within noise, not bitwise: each epoch's train loss within LOSS_REL, the last epoch's test accuracy
within ACC_ABS. (Two CPU runs of this command on different commits of this code gave train losses
1.5% apart and epoch-2 accuracies 48.1% and 45.1%; epoch 1, at the peak learning rate, 22.7% and 30.8%.)
Writes DIR/parity.json and prints a table; exits 1 when an epoch is out of tolerance.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

LOSS_REL = 0.05   # train loss, relative
ACC_ABS = 0.05    # last epoch's test accuracy, absolute (2,000 test images: one standard error is ~1 point)


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def compare(cpu, gpu):
    rows, ok = [], len(cpu) == len(gpu) and len(cpu) > 0
    for i, (c, g) in enumerate(zip(cpu, gpu)):
        loss_rel = abs(g["train_loss"] - c["train_loss"]) / abs(c["train_loss"])
        acc_diff = abs(g["test_acc"] - c["test_acc"]) if i == len(cpu) - 1 else 0.0
        good = loss_rel <= LOSS_REL and acc_diff <= ACC_ABS
        ok &= good
        rows.append({"epoch": c["epoch"], "cpu_train_loss": c["train_loss"], "gpu_train_loss": g["train_loss"],
                     "cpu_test_acc": c["test_acc"], "gpu_test_acc": g["test_acc"],
                     "cpu_img_s": c.get("images_per_s"), "gpu_img_s": g.get("images_per_s"), "ok": good})
    return ok, rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", required=True)
    p.add_argument("--gpu", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    ok, rows = compare(read(args.cpu), read(args.gpu))
    print(f"{'epoch':>5} {'train loss cpu':>15} {'gpu':>8} {'test acc cpu':>13} {'gpu':>7} {'img/s cpu':>10} {'gpu':>9}")
    for r in rows:
        print(f"{r['epoch']:>5} {r['cpu_train_loss']:>15.4f} {r['gpu_train_loss']:>8.4f} {r['cpu_test_acc']:>13.4f} "
              f"{r['gpu_test_acc']:>7.4f} {r['cpu_img_s'] or 0:>10.0f} {r['gpu_img_s'] or 0:>9.0f} "
              f"{'ok' if r['ok'] else 'OUT OF TOLERANCE'}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump({"ok": ok, "loss_rel_tol": LOSS_REL, "acc_abs_tol": ACC_ABS, "epochs": rows}, f, indent=1)
    print("parity:", "within tolerance" if ok else "OUT OF TOLERANCE (or epoch counts differ)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
