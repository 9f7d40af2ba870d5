#!/usr/bin/env bash
# The GPU check: one command that fits one call of the device tool (450 s at most, hard-stopped,
# each stage capped on its own so that a hang cannot starve the rest; at most 8 files, flat in $OUT).
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine, from the repository root
#   DEVICE=standin bash benchmarks/gpu_check.sh   # rehearsal on this machine: the CuPy stand-in, small sizes
#
# Stages (cap in seconds on a GPU):
#   1 env      (30)  GPU, driver, CUDA, CuPy, PyTorch, TF32 flags; nvcc -Xptxas -v of kernels.cu per dtype
#   2 smoke    (60)  every op GPU vs CPU at a grid over 65535 blocks; a resnet20 step in float64/float32/amp
#   3 tests   (100)  the gpu-marked tests (junit XML); fails if none ran
#   4 train   (130)  bench_train --device cuda: resnet20 and resnet9 at batch 512, float32 and --amp,
#                    PyTorch beside on the same GPU (TF32 off, stated in the table)
#   5 parity   (70)  minires train --device cuda, 2 epochs on .gpu-data, against the CPU's curve
#   6 kernels  (50)  bench_kernels --device cpu,cuda at a reduced size
#
# Files in $OUT: gpu_check.log, junit.xml, smoke.json, train_fp32.json, train_amp.json, parity.json,
# kernels.json, kernels.png.
# It uses the machine's own python3 (CuPy, PyTorch, pytest and hypothesis preinstalled) with this
# checkout on PYTHONPATH: nothing is installed. The parity stage reads .gpu-data, written here by
#   python tools/cifar_subset.py ../shared/data/cifar10-jpeg .gpu-data --train 10000 --test 2000 --pick limit
# (35 MiB; name `.gpu-data` in the device tool's `carry`).
set -u -o pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
MODE=${DEVICE:-cuda}
BUDGET=${BUDGET:-450}
LOG="$OUT/gpu_check.log"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
START=$SECONDS
status=0

if [ "$MODE" = standin ]; then  # the CPU stand-in for CuPy: every cuda path, tiny sizes
    export MINIRES_CUPY_MODULE=cupy_standin PYTHONPATH="$ROOT/tests:$PYTHONPATH"
    caps=(60 120 240 240 300 120) BATCH=4 STEPS=1 SMOKE=small EPOCH_ARGS="--limit-train 64 --limit-test 32 --batch-size 16"
    CEIL=1e-4 KBATCH=2
    BUDGET=${BUDGET_STANDIN:-1200}
else
    caps=(30 60 100 130 70 50) BATCH=512 STEPS=10 SMOKE=large EPOCH_ARGS="" CEIL=1 KBATCH=32
fi

# stage NAME CAP COMMAND...: run it under its cap and what is left of the budget; log it
. "$ROOT/benchmarks/stage.sh"

env_info() {
    set -o pipefail  # not inherited by `bash -c`
    date -u
    echo "mode: $MODE; checkout $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)')"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
    "$PY" - <<'EOF'
import numpy, minires
from minires import backend
print("python numpy", numpy.__version__, "minires", minires.__version__)
try:
    cp = backend.cupy_module()
    rt, drv = cp.cuda.runtime.runtimeGetVersion(), cp.cuda.runtime.driverGetVersion()
    print("cupy", cp.__version__, "CUDA runtime", rt, "driver", drv, "devices", cp.cuda.runtime.getDeviceCount())
except Exception as e:
    print("cupy: unusable:", e)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          "| TF32 defaults: matmul", torch.backends.cuda.matmul.allow_tf32, "cudnn", torch.backends.cudnn.allow_tf32)
except Exception as e:
    print("torch: not importable:", e)
EOF
    if command -v nvcc >/dev/null; then
        nvcc --version | tail -2
        for variant in "-Dscalar_t=float -DMINIRES_IDX32" "-Dscalar_t=double -DMINIRES_IDX32" \
            "-DMINIRES_HALF -DMINIRES_IDX32" "-Dscalar_t=float"; do
            echo "-- nvcc -arch=sm_90 -Xptxas -v $variant"
            # shellcheck disable=SC2086  # the variant is a list of -D options
            nvcc -c -arch=sm_90 -std=c++17 -Xptxas -v $variant -x cu minires/kernels/cuda/kernels.cu -o "$TMP/k.o" 2>&1 |
                grep -E "error|Compiling entry|registers|spill" | sed -E 's/ptxas info *: //' || return 1
        done
    else
        echo "nvcc: not on PATH (skipped)"
    fi
}

train_bench() {
    set -o pipefail
    for mode in fp32 amp; do
        local flag=()
        [ "$mode" = amp ] && flag=(--amp)
        "$PY" benchmarks/bench_train.py --device cuda --models resnet20,resnet9 --batch "$BATCH" --steps "$STEPS" \
            --warmup 2 --rounds 1 --out "$TMP/train-$mode" ${flag[@]+"${flag[@]}"} || return 1
        cp "$TMP/train-$mode/bench_train.json" "$OUT/train_$mode.json"
    done
}

parity() {
    set -o pipefail
    [ -d .gpu-data ] || { echo "parity: no .gpu-data here (see the header of this script)"; return 2; }
    # shellcheck disable=SC2086  # EPOCH_ARGS is a list of options
    "$PY" -m minires.cli train --device cuda --model resnet20 --data .gpu-data --epochs 2 --no-progress \
        --out "$TMP/parity" $EPOCH_ARGS || return 1
    local cpu=benchmarks/gpu_parity_cpu.jsonl
    [ "$MODE" = standin ] && cpu="$TMP/parity/metrics.jsonl"  # the rehearsal checks the plumbing only
    "$PY" benchmarks/gpu_parity.py --cpu "$cpu" --gpu "$TMP/parity/metrics.jsonl" --out "$OUT"
}

kernels() {
    set -o pipefail
    "$PY" -m minires bench --device cpu,cuda --batch "$KBATCH" --repeats 5 --warmup 2 \
        --ceiling-scale "$CEIL" --out "$TMP/kernels" || return 1
    cp "$TMP/kernels/bench_kernels.json" "$OUT/kernels.json"
    cp "$TMP/kernels/bench_kernels.png" "$OUT/kernels.png" 2>/dev/null || true
}

: >"$LOG"
export OUT PY MODE TMP BATCH STEPS EPOCH_ARGS CEIL KBATCH
export -f env_info train_bench parity kernels  # run by `timeout ... bash -c NAME` under each stage's cap
stage env "${caps[0]}" bash -c env_info
stage smoke "${caps[1]}" "$PY" benchmarks/gpu_smoke.py --out "$OUT" --size "$SMOKE"
if [ "$MODE" = standin ]; then  # no real GPU: the gpu-marked tests skip; run the stand-in's own tests
    stage tests "${caps[2]}" "$PY" -m pytest -q -p no:cacheprovider tests/cuda/test_cuda_standin.py --junitxml="$OUT/junit.xml"
else
    stage tests "${caps[2]}" "$PY" -m pytest -q -rs -p no:cacheprovider -m gpu --junitxml="$OUT/junit.xml"
fi
stage tests-ran 10 "$PY" -c 'import sys, xml.etree.ElementTree as E
s = E.parse(sys.argv[1]).getroot(); s = s if s.tag == "testsuite" else s[0]
ran = int(s.get("tests")) - int(s.get("skipped"))
print("tests run (not skipped):", ran); sys.exit(0 if ran > 0 else 1)' "$OUT/junit.xml"
stage train "${caps[3]}" bash -c train_bench
stage parity "${caps[4]}" bash -c parity
stage kernels "${caps[5]}" bash -c kernels
echo "== gpu_check: $([ $status -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - START)) s; files: $(ls "$OUT" | tr '\n' ' ')" |
    tee -a "$LOG"
exit $status
