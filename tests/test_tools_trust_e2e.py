"""The tools, started as a user starts them, on bad input: one line naming the problem and the
fix, exit code 1, no traceback, nothing run from a checkpoint."""
import sys

import pytest
import torch

from mmssm.checkpoints import TRUST_ENV
from mmssm.datasets.synthetic import make
from test_checkpoint_trust import Payload
from test_tools_e2e import IN_PROCESS_DATA, REPO, SEG_CONFIG, run

TEST = [sys.executable, REPO / 'tools/test.py', SEG_CONFIG]
TRAIN = [sys.executable, REPO / 'tools/train.py', SEG_CONFIG]


def data(tmp_path):
    make('ade20k', str(tmp_path / 'data/synthetic_ade20k'), num_train=1, num_val=1, size=32)


def error_line(out):
    assert 'Traceback' not in out, out[-3000:]
    return out.strip().splitlines()[-1]


def test_test_tool_refuses_a_checkpoint_that_runs_code(tmp_path):
    data(tmp_path)
    path, marker = tmp_path / 'evil.pth', tmp_path / 'payload_ran'
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, path)
    env = {TRUST_ENV: ''}
    out = run(tmp_path, *TEST, path, '--work-dir', tmp_path / 'work', '--cfg-options',
              *IN_PROCESS_DATA, ok=False, **env)
    assert error_line(out).startswith(f'error: refusing to load checkpoint {path}: ')
    assert '--trust-checkpoints' in out
    assert not marker.exists()

    out = run(tmp_path, *TRAIN, '--work-dir', tmp_path / 'work', '--resume', path,
              '--cfg-options', *IN_PROCESS_DATA, ok=False, **env)
    assert error_line(out).startswith(f'error: refusing to load checkpoint {path}: ')
    assert not marker.exists()


def test_test_tool_refuses_a_remote_checkpoint_that_runs_code(tmp_path):
    """An https:// checkpoint (already in torch's hub cache: nothing downloads) as tools/test.py's
    argument; load_from and Pretrained init_cfg go through the same loaders
    (test_checkpoint_schemes.py)."""
    data(tmp_path)
    cache, marker = tmp_path / 'torch/hub/checkpoints', tmp_path / 'payload_ran'
    cache.mkdir(parents=True)
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, cache / 'evil.pth')
    url = 'https://example.invalid/evil.pth'
    env = {TRUST_ENV: '', 'TORCH_HOME': str(tmp_path / 'torch')}
    out = run(tmp_path, *TEST, url, '--work-dir', tmp_path / 'work', '--cfg-options',
              *IN_PROCESS_DATA, ok=False, **env)
    assert error_line(out).startswith(f'error: refusing to load checkpoint {url} (cached as '
                                      f'{cache}/evil.pth): ')
    assert '--trust-checkpoints' in out
    assert not marker.exists()


def test_test_tool_refuses_weights_of_another_model(tmp_path):
    import torchvision
    data(tmp_path)
    path = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), path)
    out = run(tmp_path, *TEST, path, '--work-dir', tmp_path / 'work', '--cfg-options',
              *IN_PROCESS_DATA, ok=False)
    line = error_line(out)
    assert line.startswith(f'error: {path} does not fit this SSMEncoderDecoder: 0 of ')
    assert "missing keys (" in line and "unexpected keys (" in line and "'fc.weight'" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason='--amp is refused only without a GPU')
def test_amp_without_gpu_is_one_line(tmp_path):
    out = run(tmp_path, *TRAIN, '--amp', ok=False)
    assert error_line(out).startswith('error: --amp (mixed precision with a loss scaler) needs '
                                      'a GPU')


def test_one_line_errors_before_anything_is_built(tmp_path):
    out = run(tmp_path, *TRAIN, '--cfg-options', 'optim_wraper.optimizer.lr=0.1', ok=False)
    assert error_line(out) == ("error: --cfg-options optim_wraper.optimizer.lr=0.1: the config "
                               "has no key 'optim_wraper'; did you mean 'optim_wrapper'?")
    out = run(tmp_path, *TRAIN[:2], tmp_path / 'missing.py', ok=False)
    assert error_line(out) == f'error: config file not found: {tmp_path}/missing.py'


def test_optimizer_typo_stops_before_training(tmp_path):
    data(tmp_path)
    out = run(tmp_path, *TRAIN, '--work-dir', tmp_path / 'work', '--cfg-options',
              'optim_wrapper.optimizer.lrr=0.1', *IN_PROCESS_DATA, ok=False)
    assert "error: optim_wrapper: " in error_line(out) and "'lrr'" in error_line(out)
    assert 'Iter(train)' not in out
