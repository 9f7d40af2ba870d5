# Sourced by the GPU scripts (gpu_check.sh, gpu_recipe.sh): `stage NAME CAP COMMAND...` runs COMMAND
# under its cap (in seconds) and what is left of $BUDGET since $START (bash $SECONDS), appends its
# output to $LOG, and sets status=1 when it fails, is stopped at its cap, or is skipped.
stage() {  # stage NAME CAP COMMAND...: run it under its cap and what is left of the budget; log it
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START) - 5))
    [ "$cap" -gt "$left" ] && cap=$left
    if [ "$cap" -lt 5 ]; then
        echo "== $name: skipped, the ${BUDGET} s budget is spent" | tee -a "$LOG"
        status=1
        return
    fi
    echo "== $name (cap ${cap} s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout -k 5 "$cap" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] && echo "== $name: stopped at its cap" | tee -a "$LOG"
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
    [ "$rc" -eq 0 ] || status=1
}
