#!/usr/bin/env bash
# Usage: bash train.sh CONFIG [args passed to tools/train.py]: trains CONFIG.
#   e.g. --amp --fast --resume [CKPT] --work-dir DIR --cfg-options k=v ...
# Environment: GPUS=N trains on N GPUs with torchrun (PORT: its rendezvous
# port, 29500 by default); PYTHON: the interpreter (python by default).
# -h/--help prints this, then tools/train.py --help.
# CONFIG and the paths after --work-dir, --resume and --cache are taken from
# the current directory when they exist there (--work-dir: when its parent
# folder does), else from the repository root, where the run starts: the
# default work_dirs/<config>/ and the data/ and pretrain/ paths in configs and
# --cfg-options are relative to the repository.
set -euo pipefail
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; }
abspath() {  # PATH from the current directory if it exists here (-o: or its
    # parent does, for an output folder), else as given (from the repository)
    local out=0; [ "$1" = -o ] && { out=1; shift; }
    if [ -e "$1" ] || { [ $out = 1 ] && [ -d "$(dirname -- "$1")" ]; }; then
        case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac
    else echo "$1"; fi
}
for a in "$@"; do case $a in
    -h|--help) usage; cd "$(dirname "$0")"
               exec "${PYTHON:-python}" tools/train.py --help ;;
esac; done
if [ $# -lt 1 ] || [[ $1 == -* ]]; then usage >&2; exit 2; fi
CONFIG=$(abspath "$1"); shift
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --work-dir) args+=("$1")
            if [ $# -gt 1 ]; then args+=("$(abspath -o "$2")"); shift; fi ;;
        --resume|--cache) args+=("$1")  # --resume alone: the latest checkpoint
            if [ $# -gt 1 ] && [[ $2 != -* ]]; then args+=("$(abspath "$2")"); shift; fi ;;
        --work-dir=*) args+=("--work-dir=$(abspath -o "${1#*=}")") ;;
        --resume=*|--cache=*) args+=("${1%%=*}=$(abspath "${1#*=}")") ;;
        *) args+=("$1") ;;
    esac
    shift
done
GPUS=${GPUS:-1}
cd "$(dirname "$0")"
if [ "$GPUS" -gt 1 ]; then
    exec torchrun --nproc_per_node="$GPUS" --master_port="${PORT:-29500}" \
        tools/train.py "$CONFIG" --launcher pytorch "${args[@]}"
fi
exec "${PYTHON:-python}" tools/train.py "$CONFIG" "${args[@]}"
