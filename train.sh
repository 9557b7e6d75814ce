#!/usr/bin/env bash
# Train: bash train.sh CONFIG [--amp] [--resume] [--cfg-options k=v ...]
# GPUS=N trains on N GPUs with torchrun.
set -euo pipefail
CONFIG=$1; shift
GPUS=${GPUS:-1}
cd "$(dirname "$0")"
if [ "$GPUS" -gt 1 ]; then
    exec torchrun --nproc_per_node="$GPUS" --master_port="${PORT:-29500}" \
        tools/train.py "$CONFIG" --launcher pytorch "$@"
fi
exec "${PYTHON:-python}" tools/train.py "$CONFIG" "$@"
