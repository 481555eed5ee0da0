#!/usr/bin/env bash
# Creates .venv/ at the repo root and installs mmssm with its pinned stack. Safe to re-run: every
# step is skipped when what it makes is already there, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
MMCV_VERSION=2.3.6
PY=${PYTHON:-python3.11}
WHEELS=${MMSSM_WHEEL_CACHE:-$HOME/.cache/mmssm/wheels}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
have() { .venv/bin/python -c "$1" >/dev/null 2>&1; }

have 'import torch, torchvision, ninja, setuptools, wheel' ||
  pip install -q torch==2.14.1 torchvision==0.29.1 ninja setuptools wheel

if ! have 'import mmcv.ops'; then
  wheel=$(ls "$WHEELS"/onedl_mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    # onedl-mmcv's setup.py asks for C++17, but torch 2.14's headers need C++20: build the sdist
    # with that one flag raised. The wheel is cached outside the repo so a clean clone reuses it.
    echo "Building onedl-mmcv $MMCV_VERSION with its C++ ops (about 20 minutes on 2 cores, once)..."
    src=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: "onedl-mmcv==$MMCV_VERSION" -d "$src"
    tar -xzf "$src"/onedl_mmcv-$MMCV_VERSION.tar.gz -C "$src"
    sed -i 's/-std=c++17/-std=c++20/g' "$src/onedl_mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$WHEELS"
    MAX_JOBS=${MAX_JOBS:-$(nproc)} pip wheel -q --no-build-isolation --no-deps \
      -w "$WHEELS" "$src/onedl_mmcv-$MMCV_VERSION"
    rm -rf "$src"
    wheel=$(ls "$WHEELS"/onedl_mmcv-$MMCV_VERSION-*.whl | head -n 1)
  fi
  pip install -q "$wheel"
fi

have 'import mmssm_kernels, mmseg, mmdet, timm, pycocotools, onnxruntime, xdist' ||
  pip install -q -r requirements.txt -e .
