#!/usr/bin/env bash
# The project's GPU check, as one script (see ../shared/device/README.md):
# tools/benchmark.py at real image sizes in timed parts, most wanted first
# (train: ceiling + e2e from the cache; classifier; eval + memory; files;
# densenet), then the demo's train.sh --amp --fast + test.sh if time is
# left. All parts share one deadline (BUDGET seconds from the start), and a
# part cut short keeps the figures it wrote. At most 8 files land in $OUT (the device tool's limit).
# Dry run on a CPU: DEVICE=cpu BENCH_ARGS="--quick --workers 2" bash tools/gpu_check.sh
# (PYTHON: the interpreter, python3 by default)
set -uo pipefail
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
LOG=$OUT/all.log
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"
  nproc; } > "$OUT/gpu.txt" 2>&1
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
    timeout "$t" "$@" > "$OUT/part.log" 2>&1
    local rc=$?
    cat "$OUT/part.log" >> "$LOG"
    grep -v -i warn "$OUT/part.log" | grep -v '^\s*$' | tail -25
    echo "== $name exit $rc after $(( SECONDS - t0 )) s" | tee -a "$LOG"
}
bench() {  # bench NAME WANTED_SECONDS ARGS...
    local name=$1 wanted=$2; shift 2
    # shellcheck disable=SC2086  # BENCH_ARGS: extra words for every part
    part "$name" "$wanted" "$PYTHON" tools/benchmark.py --device "${DEVICE:-cuda}" \
        --amp --channels-last --out "$OUT/bench_$name.json" "$@" ${BENCH_ARGS:-}
}
demo() {
    "$PYTHON" tools/make_demo.py --out data/demo > /dev/null &&
    bash train.sh configs/demo/densenet121_chest_demo.py --amp --fast \
        --work-dir work_dirs/gpu_demo_chest && echo "train.sh done at $SECONDS s" &&
    bash test.sh configs/demo/densenet121_chest_demo.py work_dirs/gpu_demo_chest &&
    cp work_dirs/gpu_demo_chest/epochs_test.csv "$OUT/" 2>/dev/null
}
export -f demo
# Each part's wanted seconds can be set (TRAIN_TIMEOUT=...); PARTS picks and
# orders them. Runs A and B (docs/benchmarks.md) measured the backbone rows
# (densenet) and the files variants already, so those come last.
for p in ${PARTS:-train classifier eval files densenet demo}; do case $p in
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
  densenet) bench densenet "${DENSENET_TIMEOUT:-100}" --sections densenet \
      --tasks chest --densenet-batch-sizes 64 256 ;;
  demo) part "demo --amp --fast" "${DEMO_TIMEOUT:-120}" bash -c demo ;;
  *) echo "unknown part: $p" ;;
esac; done
rm -f "$OUT/part.log"
echo "QueueFeederThread lines in all logs: $(grep -c QueueFeederThread "$LOG")"
echo "total $(( SECONDS - start )) s"
