"""``import mmssm`` makes checkpoint reading weights-only for the process through one documented,
switchable function, so that mmseg's and mmdet's own entry points read our configs' checkpoints
weights-only too; mmssm's Runner reads weights-only with the switch off."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.runner import CheckpointLoader

import mmssm
from mmssm.checkpoints import TRUST_ENV, CheckpointError
from mmssm.checkpoints.reading import (SECURE_LOADING_ENV, load_from_local_weights_only,
                                       weights_only_checkpoints)
from test_checkpoint_trust import Payload
from test_tools_e2e import DEMOS

SEG_CONFIG = str(DEMOS / 'upernet_vim-demo_synthetic-ade20k.py')
DET_CONFIG = str(DEMOS / 'mask-rcnn_vmamba-demo_synthetic-coco.py')


@pytest.fixture
def evil(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker = tmp_path / 'evil.pth', tmp_path / 'payload_ran'
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, path)
    yield str(path)
    assert not marker.exists()


def local_loader():
    return CheckpointLoader._schemes['']


def test_switch_and_its_log_line(monkeypatch):
    from mmssm.checkpoints import reading
    logged = []
    monkeypatch.setattr(reading, 'print_log', lambda message, logger: logged.append(message))
    assert local_loader() is load_from_local_weights_only
    mmssm.secure_checkpoint_loading(False)
    try:
        assert local_loader() is not load_from_local_weights_only
        with weights_only_checkpoints():  # what CheckedRunner reads its checkpoints under
            assert local_loader() is load_from_local_weights_only
        assert local_loader() is not load_from_local_weights_only
    finally:
        mmssm.secure_checkpoint_loading()
    assert logged[0] == 'mmssm: process-wide weights-only checkpoint reading switched off'
    assert logged[1].startswith('mmssm: checkpoints are read weights-only process-wide (')
    assert f'{SECURE_LOADING_ENV}=0' in logged[1] and len(logged) == 2


def test_environment_switch_leaves_mmengine_alone():
    code = ('import mmssm; from mmengine.runner import CheckpointLoader as C; '
            'print(C._schemes[""].__module__)')
    out = subprocess.run([sys.executable, '-c', code], text=True, capture_output=True,
                         env=dict(os.environ, **{SECURE_LOADING_ENV: '0'}), check=True).stdout
    assert out.strip().splitlines() == ['mmengine.runner.checkpoint']


def test_mmseg_init_model_and_inferencer(evil):
    from mmseg.apis import MMSegInferencer, init_model
    with pytest.raises(CheckpointError, match='refusing to load checkpoint'):
        init_model(SEG_CONFIG, evil, device='cpu')
    with pytest.raises(CheckpointError, match='refusing to load checkpoint'):
        MMSegInferencer(SEG_CONFIG, weights=evil, device='cpu')


def test_mmdet_init_detector_and_inferencer(evil):
    from mmdet.apis import DetInferencer, init_detector
    with pytest.raises(CheckpointError, match='refusing to load checkpoint'):
        init_detector(DET_CONFIG, evil, device='cpu')
    with pytest.raises(CheckpointError, match='refusing to load checkpoint'):
        DetInferencer(DET_CONFIG, weights=evil, device='cpu')
