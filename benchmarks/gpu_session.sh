#!/usr/bin/env bash
# Issue 5's GPU checks and figures, in stages that each fit one call of the device tool (10 minutes).
#
#   bash benchmarks/gpu_session.sh tests        # the whole suite there, gpu-marked tests included
#   bash benchmarks/gpu_session.sh kernels      # minires bench --device cpu,cuda (PyTorch columns too)
#   bash benchmarks/gpu_session.sh train        # bench_train.py on cuda: resnet20 and resnet9 at 128 and 512
#   bash benchmarks/gpu_session.sh parity       # minires train --device cuda, float32 vs --amp, on .gpu-data
#
# Run from the repository root on the GPU machine. It uses that machine's python3 (which has NumPy,
# CuPy, PyTorch, pytest and hypothesis) with the source tree on PYTHONPATH: nothing is installed.
# Results go to $OUT (the device tool's folder that comes back; ./gpu-results elsewhere), at most
# eight files per stage. The parity stage reads the CIFAR-10 subset that
#   python benchmarks/cifar_subset.py ../shared/data/cifar10-jpeg .gpu-data
# writes here beforehand (41 MiB; name `.gpu-data` in the tool's `carry`).
set -u -o pipefail
stage=${1:?usage: gpu_session.sh tests|kernels|train|parity}
case "$stage" in tests | kernels | train | parity) ;; *)
    echo "unknown stage $stage: tests, kernels, train or parity" >&2
    exit 2
    ;;
esac
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu (with small EPOCHS, STEPS, BATCHES, PARITY_ARGS) smoke-tests the script here
log="$OUT/$stage.log"
status=0

step() {  # step NAME COMMAND...: run it, log it, remember a failure and go on
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$log"
    local t0=$SECONDS
    "$@" 2>&1 | tee -a "$log"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
    [ "$rc" -eq 0 ] || status=1
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
    $PY -c 'import numpy, cupy, torch; print("numpy", numpy.__version__, "cupy", cupy.__version__, "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
} | tee "$log"

case "$stage" in
tests)
    step suite "$PY" -m pytest -q -p no:cacheprovider -x
    ;;
kernels)
    devices=cpu
    [ "$DEVICE" = cpu ] || devices="cpu,$DEVICE"
    # shellcheck disable=SC2086  # KERNEL_ARGS is a list of extra options
    step kernels "$PY" benchmarks/bench_kernels.py --device "$devices" --repeats "${STEPS:-7}" --warmup 3 \
        --out "$OUT" ${KERNEL_ARGS:-}
    ;;
train)
    # Issue 5: images/s next to PyTorch's (cuDNN) for the same network and batch; resnet9 at batch 512.
    for batch in ${BATCHES:-128 512}; do
        step "train-b$batch" "$PY" benchmarks/bench_train.py --device "$DEVICE" --models resnet20,resnet9 \
            --batch "$batch" --steps "${STEPS:-10}" --warmup 3 --rounds 2 --out "$OUT/b$batch"
    done
    ;;
parity)
    if [ ! -d .gpu-data ]; then
        echo "parity: no .gpu-data here (see the header of this script)" | tee -a "$log"
        exit 2
    fi
    for mode in fp32 amp; do
        flag=()
        [ "$mode" = amp ] && flag=(--amp)
        rm -rf "runs/parity-$mode"  # a fresh run: no metrics left from an earlier one
        # shellcheck disable=SC2086  # PARITY_ARGS is a list of extra options
        step "parity-$mode" "$PY" -m minires.cli train --device "$DEVICE" --model resnet20 --data .gpu-data \
            --epochs "${EPOCHS:-5}" --no-progress --out "runs/parity-$mode" ${flag[@]+"${flag[@]}"} ${PARITY_ARGS:-}
        cp "runs/parity-$mode/metrics.jsonl" "$OUT/parity-$mode.jsonl"
        cp "runs/parity-$mode/final_eval.json" "$OUT/parity-$mode-final.json"
    done
    ;;
esac
exit $status
