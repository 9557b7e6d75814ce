#!/usr/bin/env bash
# Usage: bash test.sh CONFIG WORK_DIR [args passed to tools/test_epochs.py]
#   e.g. --split val --no-cache --cfg-options k=v ...
# Evaluates every epoch checkpoint (epoch_N.pth) of the run in WORK_DIR.
# Environment: GPUS=N evaluates on N GPUs with torchrun (PORT: its rendezvous
# port, 29500 by default); PYTHON: the interpreter (python by default).
# -h/--help prints this, then tools/test_epochs.py --help.
# CONFIG and WORK_DIR are taken from the current directory when they exist
# there, else from the repository root, where the run starts: the data/ paths
# in configs and --cfg-options are relative to the repository.
set -euo pipefail
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
abspath() {  # PATH from the current directory if it exists here, else as
    # given (from the repository)
    if [ -e "$1" ]; then case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac
    else echo "$1"; fi
}
for a in "$@"; do case $a in
    -h|--help) usage; cd "$(dirname "$0")"
               exec "${PYTHON:-python}" tools/test_epochs.py --help ;;
esac; done
if [ $# -lt 2 ] || [[ $1 == -* || $2 == -* ]]; then usage >&2; exit 2; fi
CONFIG=$(abspath "$1"); WORK_DIR=$(abspath "$2"); shift 2
GPUS=${GPUS:-1}
cd "$(dirname "$0")"
if [ "$GPUS" -gt 1 ]; then
    exec torchrun --nproc_per_node="$GPUS" --master_port="${PORT:-29500}" \
        tools/test_epochs.py "$CONFIG" "$WORK_DIR" --launcher pytorch "$@"
fi
exec "${PYTHON:-python}" tools/test_epochs.py "$CONFIG" "$WORK_DIR" "$@"
