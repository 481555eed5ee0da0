#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py options]
# Environment: GPUS (total, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS.
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
if [[ -n "$WORK_DIR" && "$WORK_DIR" != -* ]]; then
    PY_ARGS=(--work-dir "$WORK_DIR" "${@:5}")
else
    PY_ARGS=("${@:4}")
fi

# the repo's .venv (tools/install.sh) unless PYTHON names another interpreter
[ -z "${PYTHON:-}" ] && [ -x "$(dirname "$0")/../.venv/bin/python" ] && PYTHON="$(dirname "$0")/../.venv/bin/python"
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    ${PYTHON:-python} -u "$(dirname "$0")/train.py" "$CONFIG" --launcher slurm "${PY_ARGS[@]}"
