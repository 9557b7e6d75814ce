#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [options of tools/test.py]
# mmpretrain's tools/dist_test.sh: one checkpoint on GPUS processes with
# torchrun (NNODES, NODE_RANK, MASTER_ADDR, PORT and PYTHON as in train.sh).
# Every epoch of a run, with the interval: GPUS=N bash test.sh WORK_DIR.
set -euo pipefail
if [ $# -lt 3 ]; then sed -n '2,5s/^# \{0,1\}//p' "$0" >&2; exit 2; fi
export MEDFM_CALLER_DIR=$PWD
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
exec "$PYTHON" -m torch.distributed.run --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$3" --master_port="${PORT:-29500}" \
    tools/test.py "$1" "$2" "${@:4}" --launcher pytorch
