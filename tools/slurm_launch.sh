#!/usr/bin/env bash
# Usage: tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [SCRIPT's arguments]
# Runs tools/SCRIPT (train.py or test.py) with --launcher slurm as one srun job step; what
# tools/slurm_train.sh and tools/slurm_test.sh share.
# Environment: GPUS (tasks in all, default 8), GPUS_PER_NODE (8; 0 for CPU tasks, gloo: no GPU is
# requested and Slurm places the tasks), CPUS_PER_TASK (5), MASTER_PORT (29500, on the job's first
# node), SRUN_ARGS (more srun options), PYTHON (default: the repo's .venv).
set -x

PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
RESOURCES=(--ntasks="$GPUS" --cpus-per-task="$CPUS_PER_TASK")
if (( GPUS_PER_NODE > 0 )); then
    RESOURCES+=(--gres=gpu:"$GPUS_PER_NODE" --ntasks-per-node="$GPUS_PER_NODE")
fi

[ -z "${PYTHON:-}" ] && [ -x "$(dirname "$0")/../.venv/bin/python" ] && PYTHON="$(dirname "$0")/../.venv/bin/python"
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${RESOURCES[@]}" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    ${PYTHON:-python} -u "$(dirname "$0")/$SCRIPT" "${@:4}" --launcher slurm
