#!/usr/bin/env bash
# Usage: bash train.sh CONFIG [options of tools/train.py]   (-h lists them)
# GPUS=N trains on N GPUs of this machine with torchrun; over several machines
# run it on each with NNODES (machines, 1), NODE_RANK (this one's, 0 to
# NNODES-1), MASTER_ADDR (NODE_RANK 0's address, 127.0.0.1) and PORT (its
# port, 29500). PYTHON: the interpreter (default: the .venv of make, else
# python). The run starts in the repository (data/, pretrain/ and work_dirs/
# are there); paths given from elsewhere are found from here too. On Slurm:
# slurm_train.sh (docs/launch.md).
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,9s/^# \{0,1\}//p' "$0" >&2; exit 2; fi
export MEDFM_CALLER_DIR=$PWD
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$([ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
GPUS=${GPUS:-1}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29500}
if [ "$GPUS" -gt 1 ] || [ "$NNODES" -gt 1 ]; then
    exec "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" \
        --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
        --nproc_per_node="$GPUS" --master_port="$PORT" \
        tools/train.py "$@" --launcher pytorch
fi
exec "$PYTHON" tools/train.py "$@"
