"""Every scheme mmengine's CheckpointLoader knows (http(s)://, torchvision://, open-mmlab://,
mmcls://, s3://, petrel://, pavi://, local files) reads weights only: a file whose unpickling runs
code stops with its name and the opt-in, and nothing runs. The files lie where each scheme's fetch
finds them (torch's hub cache, mmengine's home, a stand-in storage backend): nothing downloads."""
import sys
import types

import pytest
import torch
import torch.nn as nn
from mmengine.runner import CheckpointLoader, load_checkpoint
from mmengine.runner import checkpoint as mmengine_checkpoint

from mmssm.checkpoints import TRUST_ENV, CheckpointError, read_checkpoint, read_state_dict
from mmssm.checkpoints import reading
from test_checkpoint_trust import Payload

URL = 'https://example.invalid/models/vim_t.pth'


@pytest.fixture
def stores(tmp_path, monkeypatch):
    """Where each scheme fetches from, in ``tmp_path``; a download fails the test. Returns
    put(uri, data): makes ``uri`` hold ``data`` (bytes) where its scheme looks."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    (tmp_path / 'mmengine').mkdir()

    def no_download(url, *args, **kwargs):
        raise AssertionError(f'tried to download {url}')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    remote = {}  # s3:// and pavi:// objects
    monkeypatch.setattr(reading, 'get_file_backend',
                        lambda uri, backend_args: types.SimpleNamespace(get=remote.__getitem__))

    class Model:

        def __init__(self, name):
            self.name = name.rsplit('/', 1)[-1]
            self.uri = f'pavi://{name}'

        def download(self, path):
            with open(path, 'wb') as f:
                f.write(remote[self.uri])

    monkeypatch.setitem(sys.modules, 'pavi', types.SimpleNamespace(
        modelcloud=types.SimpleNamespace(get=Model)))

    def put(uri, data):
        scheme, name = uri.split('://', 1)
        scheme = scheme.rsplit(':', 1)[-1]
        if scheme in ('s3', 'petrel', 'pavi'):
            remote[uri] = data
            return
        if scheme == 'open-mmlab' and name == 'local_file':  # a name mapped to a file
            (tmp_path / 'mmengine/open_mmlab.json').write_text('{"local_file": "local.pth"}')
            (tmp_path / 'mmengine/local.pth').write_bytes(data)
            return
        url = {'torchvision': mmengine_checkpoint.get_torchvision_models,
               'modelzoo': mmengine_checkpoint.get_torchvision_models,
               'open-mmlab': mmengine_checkpoint.get_external_models,
               'openmmlab': mmengine_checkpoint.get_external_models,
               'mmcls': mmengine_checkpoint.get_mmcls_models}.get(scheme, lambda: {})().get(
                   name, uri)
        cache = tmp_path / 'hub/checkpoints'
        cache.mkdir(parents=True, exist_ok=True)
        (cache / url.rsplit('/', 1)[-1]).write_bytes(data)

    return put


URIS = [URL, URL.replace('https', 'http'), 'torchvision://resnet18', 'modelzoo://resnet18',
        'open-mmlab://resnet50_v1c', 'openmmlab://resnet50_v1c', 'open-mmlab://local_file',
        'mmcls://resnet50', 's3://bucket/vim_t.pth', 'cluster1:s3://bucket/vim_t.pth',
        'petrel://bucket/vim_t.pth', 'pavi://models/vim_t.pth']


def _bytes(tmp_path, obj):
    path = tmp_path / 'saved.pth'
    torch.save(obj, path)
    return path.read_bytes()


LOADERS = {
    'read_checkpoint': read_checkpoint,
    # the Runner's load_from and tools/test.py
    'mmengine load_checkpoint': lambda uri: load_checkpoint(nn.Linear(2, 2), uri),
    # init_cfg=dict(type='Pretrained', ...) of an mmssm backbone
    'read_state_dict': read_state_dict,
}


@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('uri', URIS)
def test_code_in_a_remote_checkpoint_does_not_run(stores, tmp_path, uri, loader):
    marker = tmp_path / 'payload_ran'
    stores(uri, _bytes(tmp_path, {'state_dict': {'weight': torch.zeros(2, 2)},
                                  'meta': Payload(marker)}))
    with pytest.raises(CheckpointError) as error:
        LOADERS[loader](uri)
    assert not marker.exists()
    message = str(error.value)
    assert message.startswith('refusing to load checkpoint ') and 'exec' in message
    if '://' in uri and uri.split('://')[0] in ('http', 'https'):
        assert f'{uri} (cached as {tmp_path}/hub/checkpoints/vim_t.pth)' in message
    assert '--trust-checkpoints' in message and f'{TRUST_ENV}=1' in message


@pytest.mark.parametrize('uri', URIS)
def test_weights_load_from_every_scheme(stores, tmp_path, uri):
    stores(uri, _bytes(tmp_path, {'state_dict': {'backbone.weight': torch.ones(2, 2)}}))
    ckpt = read_checkpoint(uri)
    # mmcls:// keeps the backbone's keys without their prefix, as mmengine's loader does
    key = 'weight' if uri.startswith('mmcls://') else 'backbone.weight'
    assert torch.equal(ckpt['state_dict'][key], torch.ones(2, 2))


def test_trust_opts_in_for_remote_files_too(stores, tmp_path, monkeypatch):
    marker = tmp_path / 'payload_ran'
    stores(URL, _bytes(tmp_path, {'state_dict': {}, 'meta': Payload(marker)}))
    monkeypatch.setenv(TRUST_ENV, '1')
    read_checkpoint(URL)
    assert marker.exists()


def test_every_registered_scheme_reads_weights_only():
    """Whatever registered a scheme (mmengine, mmcv, mmseg, mmdet), each one ends in this
    module's reader; a new scheme in a later mmengine fails here until it is covered."""
    import mmcv.ops  # noqa: F401
    import mmdet.apis  # noqa: F401
    import mmseg.apis  # noqa: F401
    schemes = CheckpointLoader._schemes
    assert set(schemes) == {p for prefixes in reading.WEIGHTS_ONLY_SCHEMES
                            for p in ([prefixes] if isinstance(prefixes, str) else prefixes)}
    assert all(loader.__module__ == reading.__name__ for loader in schemes.values())


def test_unknown_model_name_is_named(stores):
    with pytest.raises(CheckpointError, match="torchvision://no_such_net: torchvision:// has no "
                                              "model 'no_such_net'"):
        read_checkpoint('torchvision://no_such_net')
