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

from mmssm.checkpoints import read_checkpoint
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


# mmseg's test.py builds mmengine's Runner whatever runner_type says: there the config's
# CheckedTestLoop and CheckpointFitHook make the same lines, once the model is built
SCRIPT_RUNS = [('mmseg', 'train.py'), ('mmdet', 'train.py'), ('mmdet', 'test.py'),
               ('mmseg', 'test.py')]
VMAMBA = REPO / 'tests/fixtures/vmamba_release_v2.pth'


def arguments(name, config, checkpoint=VMAMBA):
    return [config, checkpoint] if name == 'test.py' else [config]


@pytest.mark.parametrize('package, name', SCRIPT_RUNS)
def test_option_typo_is_refused(script, package, name):
    with pytest.raises(SystemExit) as exit_:
        script(package, name, *arguments(name, CONFIGS[package]), '--cfg-options',
               'optim_wraper.optimizer.lr=1.0')
    assert str(exit_.value) == ("error: --cfg-options optim_wraper.optimizer.lr=1.0: the config "
                                "has no key 'optim_wraper'; did you mean 'optim_wrapper'?")


@pytest.mark.parametrize('package, name', SCRIPT_RUNS)
def test_missing_data_root_is_one_line_before_anything_is_built(script, package, name):
    """Through runner_type's Runner the data are checked before the model is built: a model type
    that no registry has is never looked up."""
    unbuildable = [] if (package, name) == ('mmseg', 'test.py') else [
        '--cfg-options', 'model.type=NotARegisteredModel']
    with pytest.raises(SystemExit) as exit_:
        script(package, name, *arguments(name, CONFIGS[package]), *unbuildable)
    assert str(exit_.value).startswith(f"error: data not found: '{DATA[package]}'")


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('scripts')
    make('ade20k', str(root / DATA['mmseg']), num_train=4, num_val=1, size=64)
    make('coco', str(root / DATA['mmdet']), num_train=1, num_val=1, size=64)
    return root


@pytest.fixture(scope='module')
def vim_checkpoint(workspace):
    """A checkpoint of the Vim demo model."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(CONFIGS['mmseg']).model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, workspace / 'vim_demo.pth')
    return workspace / 'vim_demo.pth'


# a user's own config over an mmssm:: base: one training iteration, no validation
USER_CONFIGS = {
    'mmseg': "_base_ = ['mmssm::demo/upernet_vim-demo_synthetic-ade20k.py']\n"
             "train_cfg = dict(max_iters=1, val_interval=2)\n"
             "train_dataloader = dict(batch_size=2)\n",
    'mmdet': "_base_ = ['mmssm::demo/mask-rcnn_vmamba-demo_synthetic-coco.py']\n"
             "train_cfg = dict(max_epochs=1, val_interval=2)\n"}


@pytest.mark.parametrize('package', ['mmseg', 'mmdet'])
def test_user_config_over_an_mmssm_base_trains_and_tests(script, workspace, package,
                                                         monkeypatch):
    """mmengine builds every object of an mmssm:: base in scope mmssm, which looks each name up
    in the package's registries (mmssm.registry): the package's train.py and test.py (mmseg's with
    --tta: the base's tta_model and tta_pipeline) run it, with what the base declares
    (runner_type's Runner, ExactResumeHook: the random states in the checkpoint). mmssm is
    imported here before the script reads the config, which mmengine needs to resolve mmssm::
    (a fresh process of the script stops there; README)."""
    monkeypatch.chdir(workspace)
    user, work_dir = workspace / f'user_{package}.py', workspace / f'user_{package}'
    user.write_text(USER_CONFIGS[package])
    script(package, 'train.py', user, '--work-dir', work_dir, '--cfg-options', *IN_PROCESS_DATA)
    checkpoint, = work_dir.glob('*_1.pth')
    assert 'rng' in read_checkpoint(checkpoint)['meta']
    tta = ['--tta'] if package == 'mmseg' else []
    script(package, 'test.py', user, checkpoint, *tta, '--work-dir', work_dir, '--cfg-options',
           *IN_PROCESS_DATA)
    metrics = list(work_dir.rglob('*.json'))
    key = {'mmseg': '"mIoU"', 'mmdet': '"coco/segm_mAP"'}[package]
    assert metrics and key in metrics[-1].read_text()


@pytest.mark.parametrize('name', ['train.py', 'test.py'])
def test_label_value_outside_the_classes_names_the_file(script, tmp_path, vim_checkpoint, name):
    make('ade20k', str(tmp_path / DATA['mmseg']), num_train=2, num_val=1, size=32)
    for label in (tmp_path / DATA['mmseg'] / 'annotations').rglob('*.png'):
        Image.fromarray(np.full((32, 32), 200, np.uint8)).save(label)
    with pytest.raises(SystemExit) as exit_:
        script('mmseg', name, *arguments(name, CONFIGS['mmseg'], vim_checkpoint),
               '--cfg-options', 'train_cfg.max_iters=1', *IN_PROCESS_DATA)
    split = 'training/ADE_train' if name == 'train.py' else 'validation/ADE_valid'
    assert str(exit_.value).startswith('error: ')
    assert f'annotations/{split}_0000000' in str(exit_.value)
    # reported as the file holds it (199 after reduce_zero_label)
    assert 'holds values [200] that are neither one of the 150 classes' in str(exit_.value)


@pytest.mark.parametrize('package', ['mmseg', 'mmdet'])
def test_checkpoint_of_another_family_is_refused_at_test(script, workspace, package,
                                                         monkeypatch):
    """A VMamba release file evaluated with a MambaVision config: one line, by the
    CheckpointFitHook the config declares (mmseg's test.py) or the Runner it names (mmdet's)."""
    monkeypatch.chdir(workspace)
    config = DEMOS / {'mmseg': 'upernet_mambavision-demo_synthetic-ade20k.py',
                      'mmdet': 'cascade-mask-rcnn_mambavision-demo_synthetic-coco.py'}[package]
    with pytest.raises(SystemExit) as error:
        script(package, 'test.py', config, VMAMBA, '--work-dir', workspace / f'fit_{package}',
               '--cfg-options', *IN_PROCESS_DATA)
    assert str(error.value).startswith(f'error: {VMAMBA} does not fit this ')
    assert ' model tensors found' in str(error.value)


@pytest.mark.parametrize('tool', ['ours', 'mmdet'])
def test_tta_of_instance_masks_is_refused_in_one_line(script, tool):
    with pytest.raises(SystemExit) as exit_:
        script(tool, 'test.py', CONFIGS['mmdet'], VMAMBA, '--tta')
    assert str(exit_.value).startswith('error: --tta: ')
    assert "mmdet's DetTTAModel merges boxes but not masks (an mmdet limitation)" in str(
        exit_.value)


def test_tta(script, workspace, vim_checkpoint, monkeypatch):
    """--tta: the config's tta_model around its model on the dataset base's tta_pipeline (mmseg's
    test.py --tta: test_user_config_over_an_mmssm_base_trains_and_tests)."""
    monkeypatch.chdir(workspace)
    work_dir = workspace / 'tta_ours'
    script('ours', 'test.py', CONFIGS['mmseg'], vim_checkpoint, '--tta', '--work-dir', work_dir,
           '--cfg-options', *IN_PROCESS_DATA)
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
