#!/usr/bin/env bash
# Usage: bash train.sh CONFIG [options of tools/train.py]   (-h lists them)
# GPUS=N trains on N GPUs with torchrun (PORT: its port, 29500); PYTHON: the
# interpreter. The run starts in the repository (data/, pretrain/ and
# work_dirs/ are there); paths given from elsewhere are found from here too.
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,5s/^# \{0,1\}//p' "$0" >&2; exit 2; fi
export MEDFM_CALLER_DIR=$PWD
cd "$(dirname "$0")"
GPUS=${GPUS:-1}
if [ "$GPUS" -gt 1 ]; then
    exec torchrun --nproc_per_node="$GPUS" --master_port="${PORT:-29500}" \
        tools/train.py "$@" --launcher pytorch
fi
exec "${PYTHON:-python}" tools/train.py "$@"
