#!/usr/bin/env bash
# The project's GPU check, as one script (see ../shared/device/README.md):
# tools/benchmark.py at real image sizes in three timed parts (a timeout in one
# keeps the others' figures), optionally the demo train.sh + test.sh with bf16
# AMP first (DEMO=1). Everything it prints and writes lands in $OUT.
set -uo pipefail
OUT=${OUT:-work_dirs/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHON=python3
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__)"; nproc; } > "$OUT/gpu.txt" 2>&1
if [ "${DEMO:-0}" = 1 ]; then
    python3 tools/make_demo.py --out data/demo > /dev/null
    { time bash train.sh configs/demo/densenet121_chest_demo.py --amp --fast \
        --work-dir work_dirs/gpu_demo_chest; } > "$OUT/train.log" 2>&1
    { time bash test.sh configs/demo/densenet121_chest_demo.py work_dirs/gpu_demo_chest; } \
        > "$OUT/test.log" 2>&1
    cp work_dirs/gpu_demo_chest/epochs_test.* "$OUT/" 2>/dev/null
    tail -5 "$OUT/test.log"
fi
bench() {  # bench NAME TIMEOUT ARGS...
    local name=$1 limit=$2; shift 2
    timeout "$limit" python3 tools/benchmark.py --device cuda --amp --channels-last \
        --out "$OUT/bench_$name.json" "$@" > "$OUT/bench_$name.log" 2>&1
    echo "benchmark $name exit: $?" >> "$OUT/bench_$name.log"
    grep -v -i warn "$OUT/bench_$name.log" | tail -30
}
bench train "${TRAIN_TIMEOUT:-240}" --sections ceiling e2e "$@"
bench eval "${EVAL_TIMEOUT:-120}" --sections eval memory --tasks chest \
    --naive-runs "${NAIVE_RUNS:-2}"
bench densenet "${DENSENET_TIMEOUT:-100}" --sections densenet --tasks chest --iters 80
