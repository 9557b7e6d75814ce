#!/usr/bin/env bash
# Usage: bash slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [options of
#        tools/train.py]   (mmpretrain's tools/slurm_train.sh, in this repository)
# Trains with srun on GPUS GPUs (8), GPUS_PER_NODE a machine (GPUS, at most 8),
# one task a GPU with CPUS_PER_TASK CPUs (5); SRUN_ARGS: more options of srun;
# PORT (or MASTER_PORT): the port (29500); PYTHON: the interpreter (the .venv
# of make, else python). The tasks start in the repository; paths given from
# elsewhere are found from here too.
set -euo pipefail
if [ $# -lt 4 ]; then sed -n '2,8s/^# \{0,1\}//p' "$0" >&2; exit 2; fi
export MEDFM_CALLER_DIR=$PWD
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$([ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
export MASTER_PORT=${MASTER_PORT:-${PORT:-29500}}  # read by mmengine
# shellcheck disable=SC2086  # SRUN_ARGS: several options
exec srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS} \
    "$PYTHON" -u tools/train.py "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher slurm "$@"
