#!/usr/bin/env bash
# The project's GPU check, as one script (see ../shared/device/README.md):
# demo train.sh + test.sh with bf16 AMP, then tools/benchmark.py at real image
# sizes. Everything it prints lands in $OUT.
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
python3 tools/make_demo.py --out data/demo > /dev/null
{ time bash train.sh configs/demo/densenet121_chest_demo.py --amp \
    --work-dir work_dirs/gpu_demo_chest; } > "$OUT/train.log" 2>&1
{ time bash test.sh configs/demo/densenet121_chest_demo.py work_dirs/gpu_demo_chest; } \
    > "$OUT/test.log" 2>&1
cp work_dirs/gpu_demo_chest/epochs_test.* "$OUT/" 2>/dev/null
timeout "${BENCH_TIMEOUT:-330}" python3 tools/benchmark.py --device cuda --amp \
    --channels-last --naive-runs "${NAIVE_RUNS:-3}" --out "$OUT/bench.json" "$@" \
    > "$OUT/bench.log" 2>&1
echo "benchmark exit: $?" >> "$OUT/bench.log"
tail -5 "$OUT/test.log"; tail -60 "$OUT/bench.log"
