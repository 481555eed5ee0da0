"""Loading MambaVision checkpoints in the official layouts (NVIDIA's classification release and
the official mmseg/mmdet dense models), made here from a model of ours."""
import pytest
import torch

from mmssm.checkpoints import loading
from mmssm.models.backbones.mambavision import MambaVision
from tools.model_converters import mambavision2mmssm

NARROW = dict(embed_dims=16, stem_channels=8, depths=(1, 1, 3, 2), num_heads=(1, 1, 2, 4),
              layer_scale=1e-5)


def build(seed=0, **kw):
    torch.manual_seed(seed)
    model = MambaVision(arch=kw.pop('arch', NARROW), window_size=(8, 8, 4, 2), **kw)
    if model.init_cfg is None:
        model.init_weights()
    return model


def official_keys(model):
    """Our state dict under the official names: norm1 and mixer in the hybrid blocks, per-layer
    SSM tensors."""
    sd = {}
    for k, v in model.state_dict().items():
        parts = k.split('.')
        if parts[0] == 'levels' and int(parts[1]) >= 2 and parts[2] == 'blocks':
            parts[4] = {'op': 'mixer', 'norm': 'norm1'}.get(parts[4], parts[4])
            ours = {'x_proj_weight': 'x_proj.weight', 'dt_projs_weight': 'dt_proj.weight',
                    'dt_projs_bias': 'dt_proj.bias', 'A_logs': 'A_log', 'Ds': 'D'}
            if parts[-1] in ours:
                if parts[-1] in ('x_proj_weight', 'dt_projs_weight', 'dt_projs_bias'):
                    v = v[0]
                parts[-1] = ours[parts[-1]]
        sd['.'.join(parts)] = v.clone()
    return sd


def release_file(path, model):
    """NVIDIA's release: {'state_dict': ...} with DDP's module. prefix, a BatchNorm + Linear
    classifier, no output norms."""
    sd = {k: v for k, v in official_keys(model).items() if not k.startswith('outnorm')}
    sd.update({'norm.weight': torch.ones(128), 'norm.bias': torch.zeros(128),
               'head.weight': torch.zeros(1000, 128), 'head.bias': torch.zeros(1000)})
    torch.save({'state_dict': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 310}, path)
    return str(path)


def assert_same_weights(model, source, skip=()):
    for k, v in source.state_dict().items():
        if not k.startswith(skip):
            torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_release_checkpoint_loads_and_reports_the_new_output_norms(tmp_path, monkeypatch):
    source = build()
    path = release_file(tmp_path / 'mambavision_tiny_1k.pth.tar', source)
    model = build(seed=1, init_cfg=dict(type='Pretrained', checkpoint=path))
    messages = []
    monkeypatch.setattr(loading, 'print_log', lambda msg, **kw: messages.append(msg))
    model.init_weights()
    assert_same_weights(model, source, skip=('outnorm', ))
    assert len(messages) == 1 and 'initialised keys (8)' in messages[0]
    assert "'outnorm0.weight'" in messages[0] and "'outnorm3.bias'" in messages[0]


def test_dense_checkpoint_loads_every_key(tmp_path):
    source = build()
    sd = {f'backbone.{k}': v for k, v in official_keys(source).items()}
    sd['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
    path = tmp_path / 'upernet_mambavision.pth'
    torch.save({'state_dict': sd, 'meta': {}}, path)
    model = build(seed=1, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_same_weights(model, source)


def test_converted_checkpoint_loads_the_same(tmp_path):
    source = build()
    dst = tmp_path / 'converted.pth'
    mambavision2mmssm.main([release_file(tmp_path / 'release.pth.tar', source), str(dst)])
    keys = torch.load(dst, weights_only=True)['state_dict']
    assert all(k.startswith('backbone.') for k in keys) and 'backbone.head.weight' not in keys
    model = build(seed=1, init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    assert_same_weights(model, source, skip=('outnorm', ))
    with pytest.raises(SystemExit, match='not a MambaVision checkpoint'):
        bad = tmp_path / 'other.pth'
        torch.save({'state_dict': {'conv.weight': torch.zeros(1)}}, bad)
        mambavision2mmssm.main([str(bad), str(tmp_path / 'x.pth')])


def test_checkpoints_that_do_not_fit_name_the_keys(tmp_path):
    source = build()
    sd = official_keys(source)
    sd['levels.2.blocks.0.mixer.extra'] = torch.zeros(1)
    del sd['levels.3.blocks.1.mixer.qkv.bias']
    path = tmp_path / 'bad.pth'
    torch.save({'state_dict': sd}, path)
    model = build(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError) as err:
        model.init_weights()
    message = str(err.value)
    assert "missing keys (1): ['levels.3.blocks.1.op.qkv.bias']" in message
    assert "unexpected keys (1): ['levels.2.blocks.0.op.extra']" in message

    # a checkpoint of a narrower model
    release = release_file(tmp_path / 'narrow.pth.tar', source)
    wider = build(arch=dict(NARROW, embed_dims=32),
                  init_cfg=dict(type='Pretrained', checkpoint=release))
    with pytest.raises(ValueError, match=r"shape mismatches \(117\): \['levels.0.blocks.0.conv1"
                                         r"\.bias: file \(16,\) vs model \(32,\)'"):
        wider.init_weights()
