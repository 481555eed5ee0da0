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


# the opt-in: only an explicit true value trusts


@pytest.mark.parametrize('value', ['', '0', 'false', 'no', ' 0', 'FALSE', ' No '])
def test_false_values_do_not_trust(malicious, value, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, value)
    path, marker = malicious
    with pytest.raises(CheckpointError, match='refusing to load checkpoint'):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize('value', ['1', 'true', 'yes', ' TRUE ', 'Yes'])
def test_true_values_trust(malicious, value, monkeypatch):
    monkeypatch.setenv(TRUST_ENV, value)
    path, marker = malicious
    read_checkpoint(path)
    assert marker.exists()


@pytest.mark.parametrize('value', ['2', 'on', 'maybe', 'n', '1 0'])
def test_other_values_are_an_error(malicious, value, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(TRUST_ENV, value)
    path, marker = malicious
    expected = (f"{TRUST_ENV}={value!r} is neither true (1, true, yes) nor false ('', '0', "
                f"'false', 'no'): set one of those, or unset it")
    with pytest.raises(ValueError) as error:
        read_checkpoint(path)
    assert str(error.value) == expected
    # a tool stops before it does anything, with that line
    with pytest.raises(SystemExit) as stop:
        vim2mmssm.main([str(path), str(tmp_path / 'out.pth')])
    assert stop.value.code == 1
    assert capsys.readouterr().err == f'error: {expected}\n'
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()


# what mmengine's own loader reads loads here too, weights-only; code does not


def save_as_numpy_1(obj, path, zip_format):
    """``torch.save`` as under numpy 1.x, which named its array and scalar constructors
    numpy.core.multiarray.* (numpy 2 keeps them in numpy._core)."""
    import io
    import zipfile
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=zip_format)
    old = (b'numpy._core.multiarray', b'numpy.core.multiarray')
    if not zip_format:  # the pickles lie in the file as they are
        path.write_bytes(buffer.getvalue().replace(*old))
        return
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, 'w') as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data.replace(*old) if info.filename.endswith('.pkl') else data)


@pytest.mark.parametrize('zip_format', [True, False])
def test_data_mmengine_reads_loads_weights_only(tmp_path, zip_format, monkeypatch):
    import pathlib

    import numpy as np
    from mmengine.config import ConfigDict
    monkeypatch.delenv(TRUST_ENV, raising=False)
    meta = dict(
        cfg=ConfigDict(model=dict(type='EncoderDecoder', depths=[2, 2])), stages=frozenset({1, 2}),
        window=slice(0, 10, 2), work_dir=pathlib.PosixPath('/runs/a'),
        pattern=pathlib.PurePosixPath('data/*.png'), classes=np.array(['wall', 'sky']),
        raw=np.array([b'\x00\x01']), mixed=np.array([1, 'x', None, (2.5, )], dtype=object),
        when=np.array(['2026-01-01T10:00'], 'datetime64[m]'), took=np.timedelta64(3, 's'),
        best=np.float64(0.5), name=np.str_('vim'), hist=np.histogram([1, 2, 2], bins=2)[0])
    path = tmp_path / 'numpy1.pth'
    save_as_numpy_1({'meta': meta, 'state_dict': {'w': torch.ones(2)}}, path, zip_format)
    loaded = read_checkpoint(path)['meta']
    assert type(loaded['cfg']) is ConfigDict and type(loaded['cfg'].model) is ConfigDict
    assert loaded['cfg'].model.depths == [2, 2]
    for key, value in meta.items():
        assert type(loaded[key]) is type(value), key
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and loaded[key].tolist() == value.tolist()
        else:
            assert loaded[key] == value, key


class Call:
    """Unpickles as ``function(*args)``."""

    def __init__(self, function, *args):
        self.reduced = function, args

    def __reduce__(self):
        return self.reduced


def payloads(marker):
    import os
    import subprocess

    import numpy as np
    from mmengine.config import ConfigDict
    return {
        'exec': (Payload(marker), 'exec'),
        'os.system': (Call(os.system, f'touch {marker}'), 'posix.system'),
        # protocol 2 names it as Python 2 did: commands.Popen
        'subprocess': (Call(subprocess.Popen, ['touch', str(marker)]), 'Popen'),
        'inside an object array': (np.array([1, Payload(marker)], dtype=object), 'exec'),
        'inside a ConfigDict': (ConfigDict(a=Payload(marker)), 'exec'),
        'eval': (Call(eval, f'open({str(marker)!r}, "w")'), 'eval'),
    }


@pytest.mark.parametrize('zip_format', [True, False])
@pytest.mark.parametrize('kind', ['exec', 'os.system', 'subprocess', 'inside an object array',
                                  'inside a ConfigDict', 'eval'])
def test_code_is_refused_as_code(tmp_path, kind, zip_format, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'payload_ran'
    payload, name = payloads(marker)[kind]
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': payload}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert not marker.exists()
    message = str(error.value)
    assert message.startswith(f'refusing to load checkpoint {path}: besides weights it holds '
                              f'Python objects (')
    assert name in message and 'can run code from the file' in message
    assert message.endswith(f'--trust-checkpoints (tools/train.py, tools/test.py, the model '
                            f'converters) or {TRUST_ENV}=1 in the environment.')


def test_defaultdict_is_refused(tmp_path, monkeypatch):
    """torch's weights-only unpickler fills no dict subclass but ConfigDict (rebuilt from a plain
    dict), OrderedDict and Counter: a defaultdict is refused by name."""
    import collections
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'defaultdict.pth'
    torch.save({'meta': collections.defaultdict(list, a=[1])}, path)
    with pytest.raises(CheckpointError, match=rf'^refusing to load checkpoint {path}: besides '
                                              rf'weights it holds Python objects '
                                              rf'\(builtins.list, collections.defaultdict\)'):
        read_checkpoint(path)


def test_structured_numpy_arrays_are_refused(tmp_path, monkeypatch):
    """A structured dtype's pickled state may lay an object field over an integer one (numpy
    takes it): not built weights-only."""
    import numpy as np
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'records.pth'
    torch.save({'records': np.zeros(2, dtype=[('a', 'i8'), ('b', 'f4')])}, path)
    with pytest.raises(CheckpointError, match=f'cannot load checkpoint {path} weights-only: Can '
                                              f'only build .*VoidDType.*--trust-checkpoints'):
        read_checkpoint(path)
