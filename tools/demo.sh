#!/usr/bin/env bash
# The CPU demo, a few minutes end to end: makes the synthetic ADE20K-layout data set under data/
# (once), trains a small UperNet-Vim on it from scratch, evaluates it and paints its predictions.
# Logs, the checkpoint, the metrics and the painted images go to work_dirs/<config name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python
    [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
CONFIG=configs/demo/upernet_vim-demo_synthetic-ade20k.py
WORK_DIR=work_dirs/$(basename "$CONFIG" .py)
SHOW_DIR=$WORK_DIR/predictions

"$PYTHON" -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k
"$PYTHON" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
"$PYTHON" tools/test.py "$CONFIG" "$(cat "$WORK_DIR/last_checkpoint")" --work-dir "$WORK_DIR" \
    --show-dir "$SHOW_DIR"

# the test run's metrics are the newest <timestamp>/<timestamp>.json in the work dir
metrics=$(ls -t "$WORK_DIR"/*/*.json | head -n 1)
"$PYTHON" - "$metrics" "$SHOW_DIR" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))
print(f"\nSynthetic ADE20K validation: mIoU {metrics['mIoU']:.2f}, mAcc {metrics['mAcc']:.2f}, "
      f"aAcc {metrics['aAcc']:.2f}\nMetrics: {sys.argv[1]}\nPainted predictions: {sys.argv[2]}")
PY
