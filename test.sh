#!/usr/bin/env bash
# Evaluate every epoch checkpoint of a run:
#   bash test.sh CONFIG WORK_DIR [--split val] [--cfg-options k=v ...]
# GPUS=N evaluates on N GPUs with torchrun.
set -euo pipefail
CONFIG=$1; WORK_DIR=$2; shift 2
GPUS=${GPUS:-1}
cd "$(dirname "$0")"
if [ "$GPUS" -gt 1 ]; then
    exec torchrun --nproc_per_node="$GPUS" --master_port="${PORT:-29500}" \
        tools/test_epochs.py "$CONFIG" "$WORK_DIR" --launcher pytorch "$@"
fi
exec "${PYTHON:-python}" tools/test_epochs.py "$CONFIG" "$WORK_DIR" "$@"
