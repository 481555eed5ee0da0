"""Our configs through mmseg's and mmdet's own train.py / test.py (the scripts inside their
packages, which ``mim train`` / ``mim test`` run) behave as through tools/train.py and
tools/test.py: what the run does is declared in the config (samplers, hooks, annotation check,
checkpoint backend, timeout) and in the Runner it names (``runner_type``). The scripts run in this
process where they can (the error rows), in their own processes where a run trains."""
import runpy
import shutil
import sys
from pathlib import Path

import mmdet
import mmseg
import numpy as np
import pytest
import torch
from PIL import Image

from mmssm.checkpoints import CheckpointError, read_checkpoint
from mmssm.datasets.synthetic import make
from test_tools_e2e import DEMOS, IN_PROCESS_DATA, REPO, free_port, run

SCRIPTS = {'mmseg': Path(mmseg.__file__).parent / '.mim/tools',
           'mmdet': Path(mmdet.__file__).parent / '.mim/tools',
           'ours': REPO / 'tools'}
CONFIGS = {'mmseg': DEMOS / 'upernet_vim-demo_synthetic-ade20k.py',
           'mmdet': DEMOS / 'mask-rcnn_vmamba-demo_synthetic-coco.py'}
DATA = {'mmseg': 'data/synthetic_ade20k', 'mmdet': 'data/synthetic_coco/'}


@pytest.fixture
def script(monkeypatch, tmp_path):
    """Runs an OpenMMLab script in this process as ``python SCRIPT ARGS`` would, in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('LOCAL_RANK', '0')

    def run_script(package, name, *args):
        monkeypatch.setattr(sys, 'argv', [name, *map(str, args)])
        runpy.run_path(str(SCRIPTS[package] / name), run_name='__main__')

    return run_script


@pytest.mark.parametrize('package', ['mmseg', 'mmdet'])
def test_option_typo_is_refused_before_anything_is_built(script, package):
    with pytest.raises(SystemExit) as exit_:
        script(package, 'train.py', CONFIGS[package], '--cfg-options',
               'optim_wraper.optimizer.lr=1.0')
    assert str(exit_.value) == ("error: --cfg-options optim_wraper.optimizer.lr=1.0: the config "
                                "has no key 'optim_wraper'; did you mean 'optim_wrapper'?")


@pytest.mark.parametrize('package', ['mmseg', 'mmdet'])
def test_missing_data_root_is_one_line(script, package):
    with pytest.raises(SystemExit) as exit_:
        script(package, 'train.py', CONFIGS[package])
    assert str(exit_.value).startswith(f"error: data not found: '{DATA[package]}'")


def test_label_value_outside_the_classes_names_the_file(script, tmp_path):
    make('ade20k', str(tmp_path / DATA['mmseg']), num_train=2, num_val=1, size=32)
    for label in (tmp_path / DATA['mmseg'] / 'annotations/training').iterdir():
        Image.fromarray(np.full((32, 32), 200, np.uint8)).save(label)
    with pytest.raises(SystemExit) as exit_:
        script('mmseg', 'train.py', CONFIGS['mmseg'], '--cfg-options', 'train_cfg.max_iters=1',
               *IN_PROCESS_DATA)
    assert 'annotations/training/ADE_train_0000000' in str(exit_.value)
    # reported as the file holds it (199 after reduce_zero_label)
    assert 'holds values [200] that are neither one of the 150 classes' in str(exit_.value)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('scripts')
    make('ade20k', str(root / DATA['mmseg']), num_train=4, num_val=1, size=64)
    make('coco', str(root / DATA['mmdet']), num_train=1, num_val=1, size=64)
    return root


@pytest.mark.parametrize('package', ['mmseg', 'mmdet'])
def test_checkpoint_of_another_family_is_refused_at_test(script, workspace, package,
                                                         monkeypatch):
    """A VMamba release file evaluated with a MambaVision config. mmseg's test.py builds
    mmengine's own Runner (it ignores runner_type): the hook declared in the config refuses it;
    mmdet's builds the config's Runner, which makes that one line."""
    monkeypatch.chdir(workspace)
    config = DEMOS / {'mmseg': 'upernet_mambavision-demo_synthetic-ade20k.py',
                      'mmdet': 'cascade-mask-rcnn_mambavision-demo_synthetic-coco.py'}[package]
    vmamba = REPO / 'tests/fixtures/vmamba_release_v2.pth'
    refused = CheckpointError if package == 'mmseg' else SystemExit
    with pytest.raises(refused) as error:
        script(package, 'test.py', config, vmamba, '--work-dir', workspace / f'fit_{package}',
               '--cfg-options', *IN_PROCESS_DATA)
    assert f'{vmamba} does not fit this ' in str(error.value)
    assert ' model tensors found' in str(error.value)


@pytest.mark.parametrize('tool', ['ours', 'mmseg'])
def test_tta(script, workspace, tool, monkeypatch):
    """--tta: the config's tta_model around its model on the dataset base's tta_pipeline."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    monkeypatch.chdir(workspace)
    config = CONFIGS['mmseg']
    checkpoint = workspace / 'vim_demo.pth'
    if not checkpoint.exists():
        init_default_scope('mmseg')
        model = MODELS.build(Config.fromfile(config).model)
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    work_dir = workspace / f'tta_{tool}'
    script(tool, 'test.py', config, checkpoint, '--tta', '--work-dir', work_dir, '--cfg-options',
           *IN_PROCESS_DATA)
    metrics = list(work_dir.rglob('*.json'))
    assert metrics and '"mIoU"' in metrics[-1].read_text()


def test_two_cpu_processes_resume_bit_identically(workspace):
    """mmseg's train.py under torchrun on a machine without a GPU (gloo), resumed with its
    --resume from the iteration-2 checkpoint: the weights after 4 iterations equal those of the
    uninterrupted run."""
    options = ['--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
               'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
               'model.backbone.drop_path_rate=0.2', 'model.backbone.arch.embed_dims=32',
               'model.neck.embed_dim=32', 'model.decode_head.in_channels=[32,32,32,32]',
               'model.decode_head.channels=32', 'model.auxiliary_head.in_channels=32',
               'model.auxiliary_head.channels=16', *IN_PROCESS_DATA]
    train = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
             SCRIPTS['mmseg'] / 'train.py', CONFIGS['mmseg'], '--launcher', 'pytorch']
    full, resumed = workspace / 'full', workspace / 'resumed'
    run(workspace, *train[:4], f'--master_port={free_port()}', *train[4:], '--work-dir', full,
        *options)
    resumed.mkdir()
    shutil.copy(full / 'iter_2.pth', resumed / 'iter_2.pth')
    out = run(workspace, *train[:4], f'--master_port={free_port()}', *train[4:], '--work-dir',
              resumed, '--resume', *options)
    assert 'resumed epoch: 0, iter: 2' in out
    expected = read_checkpoint(full / 'iter_4.pth')['state_dict']
    again = read_checkpoint(resumed / 'iter_4.pth')['state_dict']
    assert expected.keys() == again.keys()
    for key, value in expected.items():
        assert torch.equal(value, again[key]), key
