#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py options]
# Environment: GPUS, GPUS_PER_NODE (0: CPU tasks), CPUS_PER_TASK, MASTER_PORT, SRUN_ARGS, PYTHON:
# see tools/slurm_launch.sh.
WORK_DIR=$4
if [[ -n "$WORK_DIR" && "$WORK_DIR" != -* ]]; then
    PY_ARGS=(--work-dir "$WORK_DIR" "${@:5}")
else
    PY_ARGS=("${@:4}")
fi
exec bash "$(dirname "$0")/slurm_launch.sh" "$1" "$2" train.py "$3" "${PY_ARGS[@]}"
