#!/usr/bin/env bash
# Issue 12's GPU check of the airbench94 recipe: one command for one call of the device tool (560 s at
# most, hard-stopped; each stage capped on its own so that a hang cannot starve the rest; flat files in $OUT).
#
#   bash benchmarks/gpu_recipe.sh                  # on the GPU machine, from the repository root
#   DEVICE=standin bash benchmarks/gpu_recipe.sh   # rehearsal on this machine: the CuPy stand-in, tiny sizes
#                                                    (float32 training there; the amp step in the bench stage)
#
# It reads the full CIFAR-10 as one pack, written here (IO only, a few seconds) by
#   python tools/jpeg_pack.py pack ../shared/data/cifar10-jpeg .gpu-data/cifar10-jpeg.pack
# (54 MiB; name `.gpu-data/cifar10-jpeg.pack` -- that file, not the whole .gpu-data -- in the tool's `carry`).
#
# Stages (cap in seconds on a GPU):
#   1 env      (30)  GPU, driver, CUDA, CuPy, PyTorch, Pillow versions
#   2 data     (80)  verify + unpack the pack into a temp folder, decode it once into minires's cache
#                    (in the rehearsal: unpack the real pack, then repack and unpack 30 images per class)
#   3 train   (290)  minires train --recipe airbench94 --device cuda --amp --runs 5 on the full data
#   4 bench   (145)  benchmarks/bench_recipe.py --device cuda: minires vs PyTorch step time on this GPU
#   5 summary  (15)  per-run table, mean +- std, the 10 s target, the step-time ratio
#
# Files in $OUT: gpu_recipe.log (everything printed), train_runs.md (per-run table), runs.json (minires's
# --runs summary), run0_metrics.jsonl (run 0's per-epoch rows), bench_recipe.json, bench_recipe.md,
# summary.json.
# It uses the machine's own python3 (CuPy, PyTorch, Pillow preinstalled) with this checkout on
# PYTHONPATH: nothing is installed. RUNS=N, BUDGET=S and PACK=FILE override the defaults.
set -u -o pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
MODE=${DEVICE:-cuda}
PACK=${PACK:-.gpu-data/cifar10-jpeg.pack}
LOG="$OUT/gpu_recipe.log"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export MINIRES_DATA="$TMP/minires-data"  # the decode cache lives and dies with this run
START=$SECONDS
status=0

if [ "$MODE" = standin ]; then  # the CPU stand-in for CuPy: every cuda path, tiny sizes
    export MINIRES_CUPY_MODULE=cupy_standin PYTHONPATH="$ROOT/tests:$PYTHONPATH"
    # NOTE: float16 matmuls on the stand-in are NumPy's, without BLAS (~0.25 GFLOP/s here, 15x under
    # float32): an amp step of airbench94 costs ~4 s per image. So the rehearsal trains in float32 and
    # takes the recipe's amp step through the bench stage, at batch 2.
    caps=(60 120 400 200 30) RUNS=${RUNS:-2} PER_CLASS=30 AMP=""
    TRAIN_ARGS="--limit-train 16 --limit-test 8 --batch-size 8 --epochs 1"
    BENCH_ARGS="--steps 1 --warmup 0 --rounds 1 --batch 2"
    BUDGET=${BUDGET:-900}
else
    caps=(30 80 290 145 15) RUNS=${RUNS:-5} PER_CLASS="" AMP="--amp"
    TRAIN_ARGS="" BENCH_ARGS=""
    BUDGET=${BUDGET:-560}
fi
DATA="$TMP/cifar10-jpeg"

# stage NAME CAP COMMAND...: run it under its cap and what is left of the budget; log it
. "$ROOT/benchmarks/stage.sh"

env_info() {
    set -o pipefail
    date -u
    echo "mode: $MODE; checkout $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)'); $(getconf _NPROCESSORS_ONLN) CPUs"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
    "$PY" - <<'EOF'
import numpy, minires
from minires import backend
print("python numpy", numpy.__version__, "minires", minires.__version__)
try:
    import PIL
    print("Pillow", PIL.__version__)
except ImportError:
    print("Pillow: missing (the image folder cannot be decoded)")
try:
    cp = backend.cupy_module()
    rt, drv = cp.cuda.runtime.runtimeGetVersion(), cp.cuda.runtime.driverGetVersion()
    print("cupy", cp.__version__, "CUDA runtime", rt, "driver", drv, "devices", cp.cuda.runtime.getDeviceCount())
except Exception as e:
    print("cupy: unusable:", e)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
except Exception as e:
    print("torch: not importable:", e)
EOF
}

data() {
    set -o pipefail
    [ -f "$PACK" ] || { echo "data: no $PACK here (see the header of this script)"; return 2; }
    if [ -n "$PER_CLASS" ]; then  # rehearsal: the real pack's plumbing, then a tiny copy to train on
        "$PY" tools/jpeg_pack.py unpack "$PACK" "$TMP/full" || return 1
        echo "files unpacked: $(find "$TMP/full" -type f | wc -l)"
        "$PY" tools/jpeg_pack.py pack "$TMP/full" "$TMP/small.pack" --per-class "$PER_CLASS" || return 1
        rm -rf "$TMP/full"
        "$PY" tools/jpeg_pack.py unpack "$TMP/small.pack" "$DATA" || return 1
    else
        "$PY" tools/jpeg_pack.py unpack "$PACK" "$DATA" || return 1
        echo "files unpacked: $(find "$DATA" -type f | wc -l)"
    fi
    "$PY" - "$DATA" <<'EOF'
import sys, time
from minires.data import CIFAR10
t = time.perf_counter()
train, test = CIFAR10(sys.argv[1], train=True), CIFAR10(sys.argv[1], train=False)
print(f"decoded and cached {len(train)} + {len(test)} images in {time.perf_counter() - t:.1f} s")
EOF
}

train() {
    set -o pipefail
    # shellcheck disable=SC2086  # AMP and TRAIN_ARGS are lists of options
    "$PY" -m minires.cli train --recipe airbench94 --data "$DATA" --device cuda $AMP --runs "$RUNS" \
        --no-progress --out "$TMP/train" $TRAIN_ARGS
}

bench() {
    set -o pipefail
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    "$PY" benchmarks/bench_recipe.py --device cuda --out "$TMP/bench" $BENCH_ARGS || return 1
    cp "$TMP/bench/bench_recipe.json" "$TMP/bench/bench_recipe.md" "$OUT/"
}

summary() {
    cp "$TMP/train/runs.json" "$OUT/runs.json" 2>/dev/null
    cp "$TMP/train/run0/metrics.jsonl" "$OUT/run0_metrics.jsonl" 2>/dev/null
    "$PY" - "$TMP/train" "$OUT" "$RUNS" "$MODE" <<'EOF'
import glob, json, os, statistics, sys
train, out, want, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rows = []
for path in sorted(glob.glob(os.path.join(train, "run*", "final_eval.json")), key=lambda p: int(os.path.basename(os.path.dirname(p))[3:])):
    with open(path) as f:
        r = json.load(f)
    rows.append({"run": os.path.basename(os.path.dirname(path)), "accuracy": r["accuracy"],
                 "accuracy_without_tta": r["accuracy_without_tta"], "train_time_s": r["train_time_s"], "tta": r.get("tta")})
lines = ["| run | test acc (tta) | test acc (no tta) | train s |", "|---|---|---|---|"]
lines += [f"| {r['run']} | {r['accuracy']:.4f} | {r['accuracy_without_tta']:.4f} | {r['train_time_s']:.2f} |" for r in rows]
s = {"mode": mode, "runs_wanted": want, "runs_done": len(rows), "per_run": rows}
if rows:
    for k in ("accuracy", "accuracy_without_tta", "train_time_s"):
        v = [r[k] for r in rows]
        s[k] = {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "max": max(v)}
    lines.append(f"| mean +- std | {s['accuracy']['mean']:.4f} +- {s['accuracy']['std']:.4f} | "
                 f"{s['accuracy_without_tta']['mean']:.4f} +- {s['accuracy_without_tta']['std']:.4f} | "
                 f"{s['train_time_s']['mean']:.2f} +- {s['train_time_s']['std']:.2f} |")
    s["target_10s_per_run"] = s["train_time_s"]["max"] <= 10.0
b = os.path.join(out, "bench_recipe.json")
if os.path.isfile(b):
    with open(b) as f:
        bench = json.load(f)
    s["bench"] = {"ratio_minires_over_torch": bench.get("ratio"), "total_steps": bench.get("total_steps"),
                  **{r["library"] + "_step_ms": r["step_ms"] for r in bench["rows"]},
                  **{r["library"] + "_projected_s": r["projected_s"] for r in bench["rows"]}}
with open(os.path.join(out, "train_runs.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(s, f, indent=1)
print("\n".join(lines))
print(f"runs done: {len(rows)} of {want}" + (f"; every run's training <= 10 s: {s['target_10s_per_run']}" if rows else ""))
print("(accuracy reference: PyTorch airbench94 publishes 0.9401 mean with TTA; not run here)")
if "bench" in s:
    print("bench_recipe:", json.dumps(s["bench"]))
sys.exit(0 if len(rows) == want else 1)
EOF
}

: >"$LOG"
export OUT PY MODE TMP PACK DATA RUNS PER_CLASS AMP TRAIN_ARGS BENCH_ARGS
export -f env_info data train bench summary  # run by `timeout ... bash -c NAME` under each stage's cap
stage env "${caps[0]}" bash -c env_info
stage data "${caps[1]}" bash -c data
if [ -d "$DATA" ]; then
    stage train "${caps[2]}" bash -c train
else
    echo "== train: skipped, no data" | tee -a "$LOG"
    status=1
fi
stage bench "${caps[3]}" bash -c bench
BUDGET=$((BUDGET + 10)) stage summary "${caps[4]}" bash -c summary  # the summary runs even on a spent budget
echo "== gpu_recipe: $([ $status -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - START)) s; files: $(ls "$OUT" | tr '\n' ' ')" |
    tee -a "$LOG"
exit $status
