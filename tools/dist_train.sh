#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node. Without GPUs, GPUS is the
# number of CPU processes (gloo). PYTHON picks the interpreter (default: the repo's .venv).
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}

# the repo's .venv (tools/install.sh) unless PYTHON names another interpreter
[ -z "${PYTHON:-}" ] && [ -x "$(dirname "$0")/../.venv/bin/python" ] && PYTHON="$(dirname "$0")/../.venv/bin/python"
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"
