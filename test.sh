#!/usr/bin/env bash
# Usage: bash test.sh [CONFIG] WORK_DIR [options of tools/test_epochs.py]
# Evaluates every epoch checkpoint of the run in WORK_DIR with the config it
# saved (a CONFIG given is compared with it; -h: the options).
# GPUS=N evaluates on N GPUs with torchrun (PORT: its port, 29500); PYTHON:
# the interpreter. Paths given from elsewhere are found from here too.
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2; fi
export MEDFM_CALLER_DIR=$PWD
cd "$(dirname "$0")"
GPUS=${GPUS:-1}
if [ "$GPUS" -gt 1 ]; then
    exec torchrun --nproc_per_node="$GPUS" --master_port="${PORT:-29500}" \
        tools/test_epochs.py "$@" --launcher pytorch
fi
exec "${PYTHON:-python}" tools/test_epochs.py "$@"
