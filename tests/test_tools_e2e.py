"""End-to-end runs of tools/train.py and tools/test.py, started as a user would start them, on
tiny synthetic data sets on the CPU: every family's demo configs train then test; the error paths
run on Vim's. Each run works inside a temporary folder, which holds data/ as the demo configs
expect it relative to the working directory."""
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mmssm.datasets.synthetic import make

REPO = Path(__file__).resolve().parents[1]
DEMOS = REPO / 'configs/demo'
SEG_CONFIGS = sorted(DEMOS.glob('*_synthetic-ade20k.py'))
DET_CONFIGS = sorted(DEMOS.glob('*_synthetic-coco.py'))
SEG_CONFIG = DEMOS / 'upernet_vim-demo_synthetic-ade20k.py'
DET_CONFIG = DEMOS / 'cascade-mask-rcnn_vim-demo_synthetic-coco.py'
# single-process data loading: on two cores worker processes only add start-up time
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
IN_PROCESS_DATA = [f'{loader}.{key}' for loader in LOADERS
                   for key in ('num_workers=0', 'persistent_workers=False')]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('e2e')
    make('ade20k', str(root / 'data/synthetic_ade20k'), num_train=8, num_val=3, size=128)
    make('coco', str(root / 'data/synthetic_coco'), num_train=4, num_val=2, size=128)
    return root


def run(cwd, *command, ok=True, **env):
    """Runs ``command`` in ``cwd`` with extra environment ``env``; returns its output."""
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(REPO), **env)
    proc = subprocess.run([str(c) for c in command], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert (proc.returncode == 0) == ok, f'exit code {proc.returncode}:\n{proc.stdout[-5000:]}'
    return proc.stdout


def seg_options(iters):
    # no validation while training: tools/test.py evaluates the checkpoint
    return ['--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_begin={iters + 1}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=2', *IN_PROCESS_DATA]


def metric(output, name):
    values = re.findall(rf'{re.escape(name)}: (\d+\.\d+)', output)
    assert values, f'no {name} in the output:\n{output[-5000:]}'
    return float(values[-1])


def free_port():
    """A free TCP port below Linux's ephemeral range (32768 up): a port the kernel hands out from
    that range can go to another socket (srun's, a client's, the other test worker's) before the
    run binds it."""
    while True:
        port = random.randrange(20000, 32768)
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', port))
            except OSError:
                continue
            return port


def test_demo_configs_found():
    assert [p.name.split('-demo')[0] for p in SEG_CONFIGS + DET_CONFIGS] == [
        'upernet_mambavision', 'upernet_vim', 'upernet_vmamba', 'cascade-mask-rcnn_mambavision',
        'cascade-mask-rcnn_vim', 'mask-rcnn_vmamba']


@pytest.mark.parametrize('config', SEG_CONFIGS, ids=lambda p: p.stem)
def test_segmentation_train_then_test(workspace, config):
    work_dir = workspace / config.stem
    run(workspace, sys.executable, REPO / 'tools/train.py', config, '--work-dir', work_dir,
        *seg_options(2))
    assert (work_dir / 'iter_2.pth').is_file()

    out = run(workspace, sys.executable, REPO / 'tools/test.py', config,
              work_dir / 'iter_2.pth', '--work-dir', work_dir, '--show-dir', work_dir / 'show',
              '--out', work_dir / 'labels', '--cfg-options', *IN_PROCESS_DATA)
    assert 0 <= metric(out, 'mIoU') <= 100
    assert len(list((work_dir / 'show').rglob('*.png'))) == 3
    assert len(list((work_dir / 'labels').glob('*.png'))) == 3


@pytest.mark.parametrize('config', DET_CONFIGS, ids=lambda p: p.stem)
def test_detection_train_then_test(workspace, config):
    work_dir = workspace / config.stem
    options = ['--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_begin=2',
               'default_hooks.logger.interval=1', *IN_PROCESS_DATA]
    run(workspace, sys.executable, REPO / 'tools/train.py', config, '--work-dir', work_dir,
        *options)
    assert (work_dir / 'epoch_1.pth').is_file()

    out = run(workspace, sys.executable, REPO / 'tools/test.py', config,
              work_dir / 'epoch_1.pth', '--work-dir', work_dir, '--show-dir', work_dir / 'show',
              '--out', work_dir / 'predictions.pkl', '--cfg-options', *IN_PROCESS_DATA)
    assert 0 <= metric(out, 'coco/bbox_mAP') <= 1
    assert 0 <= metric(out, 'coco/segm_mAP') <= 1
    assert len(list((work_dir / 'show').rglob('*.jpg'))) == 2
    assert (work_dir / 'predictions.pkl').is_file()


def test_missing_data_is_reported_clearly(tmp_path):
    out = run(tmp_path, sys.executable, REPO / 'tools/train.py', SEG_CONFIG, '--work-dir',
              tmp_path / 'work', ok=False)
    assert "data not found: 'data/synthetic_ade20k'" in out
    assert 'python -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k' in out
    assert 'Traceback' not in out


def test_missing_pretrained_weights_are_reported_clearly(tmp_path):
    make('ade20k', str(tmp_path / 'data/synthetic_ade20k'), num_train=1, num_val=1, size=64)
    config = tmp_path / 'pretrained.py'
    config.write_text(f"_base_ = '{SEG_CONFIG}'\n"
                      "model = dict(backbone=dict(init_cfg=dict(\n"
                      "    _delete_=True, type='Pretrained', checkpoint='nowhere/vim.pth')))\n")
    out = run(tmp_path, sys.executable, REPO / 'tools/train.py', config, '--work-dir',
              tmp_path / 'work', ok=False)
    assert ("checkpoint not found: 'nowhere/vim.pth' (model.backbone.init_cfg): download the "
            "official weights there, or train from scratch with --cfg-options "
            "model.backbone.init_cfg=None") in out
    assert 'Traceback' not in out
