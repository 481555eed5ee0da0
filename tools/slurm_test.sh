#!/usr/bin/env bash
# Usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py options]
# Environment: GPUS, GPUS_PER_NODE (0: CPU tasks), CPUS_PER_TASK, MASTER_PORT, SRUN_ARGS, PYTHON:
# see tools/slurm_launch.sh.
exec bash "$(dirname "$0")/slurm_launch.sh" "$1" "$2" test.py "${@:3}"
