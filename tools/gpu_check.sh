#!/usr/bin/env bash
# The project's GPU check, as one script (docs/benchmarks.md says how to run it):
# python -m benchmarks at real image sizes in timed parts, most wanted first
# (train: ceiling + e2e from the cache; classifier; eval + memory; files),
# then the demo's train.sh --amp --fast + test.sh if time is left. All parts
# share one deadline (BUDGET seconds from the start), and a part cut short
# keeps the figures it wrote. At most 8 files land in $OUT (the device tool's
# limit). Run from the repository root (python -m benchmarks finds it there).
# Usage: [VAR=value ...] bash tools/gpu_check.sh [extra args for the train part]
#   OUT      where the figures and logs go (work_dirs/gpu_check)
#   BUDGET   seconds for all parts together (540)
#   PARTS    which parts, in order (train classifier eval files demo)
#   TRAIN_TIMEOUT, CLASSIFIER_TIMEOUT, EVAL_TIMEOUT, FILES_TIMEOUT,
#   DEMO_TIMEOUT   seconds each part wants (240 120 200 150 120), capped by
#            what is left of BUDGET
#   DEVICE   cuda (default) or cpu; without a GPU only DEVICE=cpu runs
#   BENCH_ARGS  extra words for every benchmark part; NAIVE_RUNS (eval: 1)
#   PYTHON   the interpreter (python3)
#   WHEELS   a folder of wheels installed into /tmp/site first, if it exists (.whl)
# Dry run on a CPU: DEVICE=cpu BENCH_ARGS="--quick --workers 2" bash tools/gpu_check.sh
set -uo pipefail
for a in "$@"; do case $a in
    -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac; done
if [ "${DEVICE:-cuda}" != cpu ] &&
        ! { gpus=$(nvidia-smi -L 2>/dev/null) && [[ $gpus == *GPU* ]]; }; then
    echo "gpu_check.sh: no GPU visible (nvidia-smi missing or failing);" \
        "DEVICE=cpu for a dry run on the CPU" >&2
    exit 1
fi
OUT=${OUT:-work_dirs/gpu_check}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
start=$SECONDS
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}  # the stack as wheels, for the bare device machine
if [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHON PYTHONUNBUFFERED=1
# a forgotten carry of .whl would fail every part: stop at once instead
# (one interpreter start: importing the stack takes seconds)
if ! versions=$("$PYTHON" -c 'import mmengine, mmpretrain, mmcv, medfm, numpy, torch
print("torch", torch.__version__, "numpy", numpy.__version__)' 2>&1); then
    echo "$versions" | tail -3
    echo "gpu_check.sh: the stack does not import (carry the .whl folder?)" >&2
    exit 1
fi
LOG=$OUT/all.log
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  echo "$versions" | tail -1; nproc; } > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

left() { echo $(( BUDGET - (SECONDS - start) )); }
limit() {  # limit WANTED: WANTED capped by the time left
    local l; l=$(left); echo $(( $1 < l ? $1 : l ))
}
part() {  # part NAME WANTED_SECONDS COMMAND...
    local name=$1 t; t=$(limit "$2"); shift 2
    if [ "$t" -lt 20 ]; then echo "== $name skipped: $(left) s left" | tee -a "$LOG"; return; fi
    echo "== $name (limit $t s, at $(( SECONDS - start )) s)" | tee -a "$LOG"
    local t0=$SECONDS
    timeout -k 10 "$t" "$@" > "$OUT/part.log" 2>&1
    local rc=$?
    cat "$OUT/part.log" >> "$LOG"
    grep -v -i warn "$OUT/part.log" | grep -v '^\s*$' | tail -25
    echo "== $name exit $rc after $(( SECONDS - t0 )) s" | tee -a "$LOG"
}
bench() {  # bench NAME WANTED_SECONDS ARGS...
    local name=$1 wanted=$2; shift 2
    # shellcheck disable=SC2086  # BENCH_ARGS: extra words for every part
    part "$name" "$wanted" "$PYTHON" -m benchmarks --device "${DEVICE:-cuda}" \
        --amp --channels-last --out "$OUT/bench_$name.json" "$@" ${BENCH_ARGS:-}
}
demo() {
    # a warm machine keeps ignored outputs: a second call must not find
    # the first call's checkpoints (train.sh refuses a used work dir)
    rm -rf work_dirs/gpu_demo_chest
    "$PYTHON" tools/make_demo.py --out-dir data/demo > /dev/null &&
    bash train.sh configs/demo/densenet121_chest_demo.py --amp --fast \
        --work-dir work_dirs/gpu_demo_chest && echo "train.sh done at $SECONDS s" &&
    bash test.sh configs/demo/densenet121_chest_demo.py work_dirs/gpu_demo_chest &&
    cp work_dirs/gpu_demo_chest/epochs_test.csv "$OUT/" 2>/dev/null
}
export -f demo
# Runs A and B (docs/benchmarks.md) measured the files variants already: last.
for p in ${PARTS:-train classifier eval files demo}; do case $p in
  # chest last: in runs A and B its low figure was the process's first e2e run
  train) bench train "${TRAIN_TIMEOUT:-240}" --sections ceiling e2e \
      --tasks colon endo chest --variants cache+span cache --iters 60 \
      --ceiling-after "$@" ;;
  classifier) bench classifier "${CLASSIFIER_TIMEOUT:-120}" --sections classifier \
      --tasks chest --iters 60 ;;
  eval) bench eval "${EVAL_TIMEOUT:-200}" --sections eval memory --tasks chest \
      --naive-runs "${NAIVE_RUNS:-1}" ;;
  files) bench files "${FILES_TIMEOUT:-150}" --sections ceiling e2e \
      --variants files+span files ;;
  demo) part "demo --amp --fast" "${DEMO_TIMEOUT:-120}" bash -c demo ;;
  *) echo "unknown part: $p" ;;
esac; done
rm -f "$OUT/part.log"
echo "QueueFeederThread lines in all logs: $(grep -c QueueFeederThread "$LOG")"
echo "total $(( SECONDS - start )) s"
