"""Checkpoints load weights-only on every path: a pickle that runs code when loaded stops with its
name and the opt-in, without running; unreadable files are named."""
import pytest
import torch
import torch.nn as nn
from mmengine.runner import CheckpointLoader, load_checkpoint

from mmssm.checkpoints import TRUST_ENV, CheckpointError, read_checkpoint, read_state_dict
from tools.model_converters import vim2mmssm


class Payload:
    """Unpickling it writes ``marker``, as a malicious checkpoint would run a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("ran")', )


@pytest.fixture(params=['zip', 'legacy'])
def malicious(tmp_path, request):
    """A checkpoint in torch's zip format, or in the format before torch 1.6."""
    path = tmp_path / 'evil.pth'
    marker = tmp_path / 'payload_ran'
    torch.save({'state_dict': {'weight': torch.zeros(2, 2)}, 'meta': Payload(marker)}, path,
               _use_new_zipfile_serialization=request.param == 'zip')
    return path, marker


LOADERS = {
    'read_checkpoint': read_checkpoint,
    # what the Runner's load_from, resume and tools/test.py go through
    'mmengine CheckpointLoader': lambda p: CheckpointLoader.load_checkpoint(str(p)),
    'mmengine load_checkpoint': lambda p: load_checkpoint(nn.Linear(2, 2), str(p)),
    # init_cfg=dict(type='Pretrained', ...)
    'read_state_dict': read_state_dict,
}


@pytest.mark.parametrize('loader', LOADERS)
def test_code_in_a_checkpoint_does_not_run(malicious, loader, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker = malicious
    with pytest.raises(CheckpointError) as error:
        LOADERS[loader](path)
    assert not marker.exists()
    assert f'refusing to load checkpoint {path}' in str(error.value)
    assert 'exec' in str(error.value)
    assert '--trust-checkpoints' in str(error.value) and f'{TRUST_ENV}=1' in str(error.value)


def test_converter_refuses_code_too(malicious, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path, marker = malicious
    with pytest.raises(SystemExit, match=f'refusing to load checkpoint {path}'):
        vim2mmssm.main([str(path), str(tmp_path / 'out.pth')])
    assert not marker.exists()


def test_trusted_file_loads_fully(malicious, monkeypatch):
    path, marker = malicious
    monkeypatch.setenv(TRUST_ENV, '1')
    assert read_checkpoint(path)['state_dict']['weight'].shape == (2, 2)
    assert marker.exists()  # the opt-in does what it says


def test_mmengine_checkpoint_contents_load_weights_only(tmp_path, monkeypatch):
    """What mmengine's Runner puts in a checkpoint besides tensors: the message hub's history
    buffers (numpy inside), numpy scalars, the config text, the dataset's metainfo."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    monkeypatch.delenv(TRUST_ENV, raising=False)
    buffer = HistoryBuffer()
    buffer.update(np.float64(1.5))
    buffer.update(2.0)
    saved = dict(
        meta=dict(seed=0, iter=2, cfg='a = 1', dataset_meta=dict(classes=('a', 'b'),
                                                                  palette=[[1, 2, 3]])),
        state_dict={'w': torch.ones(3)},
        message_hub=dict(log_scalars={'train/loss': buffer},
                         runtime_info={'iter': 2, 'scale': np.float32(0.5),
                                       'max': np.int64(7)}, resumed_keys={'iter': True}),
        optimizer={'state': {0: {'step': torch.tensor(2.0)}}, 'param_groups': [{'lr': 0.1}]})
    path = tmp_path / 'iter_2.pth'
    torch.save(saved, path)
    loaded = read_checkpoint(path)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 2.0
    assert loaded['message_hub']['runtime_info']['scale'] == np.float32(0.5)


class Probe:
    """Pickles as getattr(HistoryBuffer, '__dict__'): the getattr mmengine's checkpoints need, on
    another attribute."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, '__dict__')


def test_getattr_is_allowed_only_for_history_buffers(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'probe.pth'
    torch.save({'probe': Probe()}, path)
    with pytest.raises(CheckpointError, match=f"cannot load checkpoint {path} weights-only: "
                                              f"Unsupported getattr.*'__dict__'.*--trust-"):
        read_checkpoint(path)


def test_deit_style_training_file_loads(tmp_path, monkeypatch):
    """hustvl/Vim's main.py saves model, optimizer, schedule and its argparse arguments."""
    import argparse
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'vim_t.pth'
    torch.save({'model': {'w': torch.ones(2)}, 'epoch': 299, 'optimizer': {'state': {}},
                'args': argparse.Namespace(model='vim_tiny', lr=5e-4, drop_path=0.0)}, path)
    assert read_checkpoint(path)['args'].model == 'vim_tiny'


@pytest.mark.parametrize('content', [b'', b'not a checkpoint\n', 'truncated'])
def test_unreadable_files_are_named(tmp_path, content, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'bad.pth'
    if content == 'truncated':
        torch.save({'state_dict': {'w': torch.randn(1000)}}, path)
        path.write_bytes(path.read_bytes()[:2000])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f'cannot read checkpoint {path}'):
        read_checkpoint(path)


def test_converter_trust_flag_opts_in(malicious, tmp_path, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, '')  # restored after the flag sets it
    path, marker = malicious
    with pytest.raises(SystemExit, match='not a Vim checkpoint'):
        vim2mmssm.main([str(path), str(tmp_path / 'out.pth'), '--trust-checkpoints'])
    assert marker.exists()
