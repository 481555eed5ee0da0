#!/usr/bin/env bash
# One prepared command for a freshly lent GPU machine (about 6-8 minutes on an H100/H200):
#   1. installs what is missing from the device wheels (MMSSM_DEVICE_WHEELS, else shared/ or
#      ../shared/device-wheels) and makes mmssm / mmssm_kernels importable from this checkout;
#   2. runs the kernel tests on the machine's triton (the GPU image has 3.6);
#   3. tools/benchmark_scan.py on the three benchmark shapes (Vim-S, VMamba-T stage 1,
#      MambaVision-T stage 3; H100 targets beside them);
#   4. tools/analysis_tools/benchmark.py: Vim-Ti backbone vs DeiT-Ti at 1248^2, UperNet-VMamba-T
#      and UperNet-MambaVision-T vs UperNet-Swin-T at 512^2;
# and writes one table, $OUT/gpu_report.md (else work_dirs/gpu_report/gpu_report.md), with every
# step's raw output after it. Without a CUDA GPU it stops after step 1 and says so (exit 2).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
DIR=${OUT:-work_dirs/gpu_report}
mkdir -p "$DIR/logs" "$DIR/path"
REPORT=$DIR/gpu_report.md
# mmssm_kernels is the kernels/ folder installed under that name: a link stands in for it
ln -sfn "$PWD/kernels" "$DIR/path/mmssm_kernels"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/$DIR/path${PYTHONPATH:+:$PYTHONPATH}"
ROWS=$DIR/logs/rows.tsv
: > "$ROWS"
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$ROWS"; }

# 1. missing packages from the device wheels (no index: the machine reaches nothing outside)
WHEELS=
for d in "${MMSSM_DEVICE_WHEELS:-}" shared/device-wheels ../shared/device-wheels \
         ../../shared/device-wheels; do
    if [ -n "$d" ] && [ -d "$d" ]; then WHEELS=$d; break; fi
done
installed=0
if [ -n "$WHEELS" ]; then
    missing=$("$PYTHON" - "$WHEELS" <<'PY'
import glob, os, sys
from importlib import metadata
have = {d.metadata['Name'].lower().replace('_', '-') for d in metadata.distributions()}
for whl in sorted(glob.glob(os.path.join(sys.argv[1], '*.whl'))):
    if os.path.basename(whl).split('-')[0].lower().replace('_', '-') not in have:
        print(whl)
PY
)
    for whl in $missing; do
        "$PYTHON" -m pip install -q --no-index --no-deps "$whl" >> "$DIR/logs/install.log" 2>&1 \
            && installed=$((installed + 1)) || echo "could not install $whl" >> "$DIR/logs/install.log"
    done
fi
versions=$("$PYTHON" -c "import torch, triton; print(f'torch {torch.__version__}, triton {triton.__version__}, ' + (torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA GPU'))" 2>&1 | tail -1)
row 'set-up' "${WHEELS:-no wheel folder found}" "$installed wheels installed; $versions"
"$PYTHON" -c "import mmcv, mmseg, mmdet, mmssm, mmssm_kernels" > "$DIR/logs/imports.log" 2>&1 \
    && row 'imports' 'mmcv mmseg mmdet mmssm mmssm_kernels' 'ok' \
    || row 'imports' 'mmcv mmseg mmdet mmssm mmssm_kernels' "failed: $(tail -1 "$DIR/logs/imports.log")"

finish() {
    "$PYTHON" - "$ROWS" "$REPORT" "$DIR/logs" <<'PY'
import os, sys
rows = [line.rstrip('\n').split('\t') for line in open(sys.argv[1])]
out = ['| step | what | result |', '|---|---|---|']
out += [f'| {a} | {b} | {c} |' for a, b, c in rows]
for name in ('kernel_tests', 'benchmark_scan', 'vim', 'vmamba', 'mambavision'):
    path = os.path.join(sys.argv[3], name + '.log')
    if os.path.exists(path):
        out += ['', f'### {name}', '```', open(path).read().rstrip()[-6000:], '```']
open(sys.argv[2], 'w').write('\n'.join(out) + '\n')
print('\n'.join(out[:len(rows) + 2]))
print(f'\nreport: {sys.argv[2]}')
PY
}

if ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    row 'stopped' 'steps 2-4 need a CUDA GPU' 'none on this machine'
    finish
    exit 2
fi

# 2. kernel tests on this machine's triton (on a GPU they run compiled, not interpreted)
timeout 240 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_kernels_triton.py \
    tests/test_kernels_mamba_cases.py tests/test_kernels_reference.py \
    tests/test_kernels_cuda_graph.py > "$DIR/logs/kernel_tests.log" 2>&1
row 'kernel tests' "$(echo "$versions" | cut -d, -f2)" "$(tail -1 "$DIR/logs/kernel_tests.log")"

# 3. the scan on the three benchmark shapes
timeout 150 "$PYTHON" tools/benchmark_scan.py --warmup 3 --runs 20 > "$DIR/logs/benchmark_scan.log" 2>&1
while IFS= read -r line; do
    row 'scan µs (fwd/bwd)' "$(echo "$line" | cut -c1-32 | sed 's/  */ /g')" \
        "$(echo "$line" | cut -c33- | sed 's/  */ /g')"
done < <(grep -E ' (triton|mamba_ssm) ' "$DIR/logs/benchmark_scan.log")

# 4. models beside their baselines
bench() {  # name, then benchmark.py's arguments
    local name=$1; shift
    timeout 100 "$PYTHON" tools/analysis_tools/benchmark.py "$@" --amp bf16 --warmup 3 \
        --repeats 10 > "$DIR/logs/$name.log" 2>&1
    row "benchmark.py $name" "$*" "exit $? (table below)"
}
bench vim configs/upernet_vim-ti_ade20k.py --backbone-only --shape 1248 --batch 8 \
    --baseline deit-ti --mode infer train
bench vmamba configs/upernet_vmamba-t_ade20k.py --shape 512 --batch 4 --baseline swin-t \
    --mode infer train
bench mambavision configs/upernet_mambavision-t_ade20k.py --shape 512 --batch 4 \
    --baseline swin-t --mode infer train
finish
