#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG GPUS [options of tools/train.py]
# mmpretrain's name for GPUS=N bash train.sh CONFIG ... (NNODES, NODE_RANK,
# MASTER_ADDR, PORT and PYTHON as there).
set -euo pipefail
if [ $# -lt 2 ]; then sed -n '2,4s/^# \{0,1\}//p' "$0" >&2; exit 2; fi
CONFIG=$1
export GPUS=$2
shift 2
exec bash "$(dirname "$0")/../train.sh" "$CONFIG" "$@"
