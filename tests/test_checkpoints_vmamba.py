"""Loading VMamba checkpoints in every release layout, and the numbers of the release's own code.

tests/fixtures/vmamba_release_{v2,v0}.pth were written by the release's ``Backbone_VSSM``
(MzeroMiko/VMamba, classification/models/vmamba.py, run on the CPU) with random weights (stored in
half precision, computed from the same values in fp32): its ``state_dict`` under 'model', and its
stage outputs for inputs drawn with torch.Generator().manual_seed(1) at each of 'sizes'.
tools/analysis_tools/vmamba_release_outputs.py made them (the command is in its docstring).
"""
import re
from pathlib import Path

import pytest
import torch

from mmssm.checkpoints import loading
from mmssm.models.backbones import VisionMamba, VMamba
from tools.model_converters import vmamba2mmssm

FIXTURES = Path(__file__).parent / 'fixtures'
# the fixtures' models: 3 stages of 1-2 blocks, 8 channels at stride 4
RELEASE = {
    'v2': dict(embed_dims=8, depths=(1, 2, 1), ssm_ratio=1.0, d_state=1),
    'v0': dict(embed_dims=8, depths=(1, 1, 1), ssm_ratio=2.0, d_state=4, conv_bias=True, gate=True,
               mlp_ratio=0.0, stem='patch', downsample='patch_merging'),
}


def release(version):
    return torch.load(FIXTURES / f'vmamba_release_{version}.pth', weights_only=True)


def build(version, path=None, **kw):
    init_cfg = None if path is None else dict(type='Pretrained', checkpoint=str(path), **kw)
    model = VMamba(arch=RELEASE[version], out_indices=(0, 1, 2), init_cfg=init_cfg)
    model.init_weights()
    return model.eval()


def save(tmp_path, name, state_dict, wrapper='model'):
    path = tmp_path / name
    torch.save({wrapper: state_dict}, path)
    return path


@pytest.mark.parametrize('version', ['v2', 'v0'])
def test_outputs_equal_the_release_code(version):
    ckpt = release(version)
    model = build(version, FIXTURES / f'vmamba_release_{version}.pth')
    generator = torch.Generator().manual_seed(ckpt['seed'])
    for hw in ckpt['sizes'].split(','):
        x = torch.randn(1, 3, *map(int, hw.split('x')), generator=generator)
        with torch.no_grad():
            outs = model(x)
        for ours, theirs in zip(outs, ckpt['outputs'][hw], strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4, msg=hw)


def loads_as_release(tmp_path, version, state_dict, **kw):
    """Loads a file holding ``state_dict`` and checks every tensor against the release's."""
    model = build(version, save(tmp_path, 'ckpt.pth', state_dict), **kw)
    for key, value in release(version)['model'].items():
        torch.testing.assert_close(model.state_dict()[key], value.float(), msg=key)


def test_classification_release_loads_and_reports_the_output_norms(tmp_path, monkeypatch):
    sd = {k: v for k, v in release('v2')['model'].items() if not k.startswith('outnorm')}
    sd['classifier.norm.weight'], sd['classifier.head.weight'] = torch.ones(32), torch.zeros(9, 32)
    logged = []
    monkeypatch.setattr(loading, 'print_log', lambda msg, **kw: logged.append(msg))
    model = build('v2', save(tmp_path, 'cls.pth', sd))
    assert len(logged) == 1 and 'initialised keys (6)' in logged[0]
    assert "'outnorm0.bias'" in logged[0]
    torch.testing.assert_close(model.outnorm2.weight, torch.ones(32))
    torch.testing.assert_close(model.layers[1]['blocks'][1].op.A_logs,
                               sd['layers.1.blocks.1.op.A_logs'].float())


def test_single_file_model_layout_loads(tmp_path):
    """The repository's vmamba.py stores x_proj and dt_projs as grouped linear layers."""
    sd = {}
    for key, value in release('v2')['model'].items():
        if key.endswith('x_proj_weight') or key.endswith('dt_projs_weight'):
            key, value = key.replace('_weight', '.weight'), value.flatten(0, 1)
        sd[key] = value
    assert 'layers.0.blocks.0.op.dt_projs.weight' in sd
    loads_as_release(tmp_path, 'v2', sd)


def test_first_version_names_load(tmp_path):
    """vssmtiny_dp01-era names: patch_embed.proj/norm, ln_1, self_attention, head and norm."""
    sd = {}
    for key, value in release('v0')['model'].items():
        for new, old in (('patch_embed.0.', 'patch_embed.proj.'),
                         ('patch_embed.2.', 'patch_embed.norm.'), ('.op.', '.self_attention.')):
            key = key.replace(new, old)
        sd[re.sub(r'(blocks\.\d+)\.norm\.', r'\1.ln_1.', key)] = value
    sd['head.weight'], sd['norm.weight'] = torch.zeros(9, 32), torch.ones(32)
    assert 'layers.0.downsample.norm.weight' in sd and 'layers.1.blocks.0.ln_1.weight' in sd
    loads_as_release(tmp_path, 'v0', sd)


@pytest.mark.parametrize('prefix', [None, 'backbone.'])
def test_dense_model_state_dict_loads(tmp_path, prefix):
    sd = {f'backbone.{k}': v for k, v in release('v2')['model'].items()}
    sd['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
    path = save(tmp_path, 'upernet.pth', sd, wrapper='state_dict')
    model = build('v2', path, prefix=prefix)
    torch.testing.assert_close(model.outnorm1.bias, sd['backbone.outnorm1.bias'].float())


def test_wrong_checkpoints_name_the_keys(tmp_path):
    path = FIXTURES / 'vmamba_release_v2.pth'
    deeper = VMamba(arch=dict(RELEASE['v2'], depths=(1, 3, 1)), out_indices=(0, 1, 2),
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r"missing keys \(\d+\): \['layers.1.blocks.2"):
        deeper.init_weights()
    wider = VMamba(arch=dict(RELEASE['v2'], ssm_ratio=2.0), out_indices=(0, 1, 2),
                   init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'shape mismatches .*layers.0.blocks.0.op.A_logs: '
                                         r'file \(32, 1\) vs model \(64, 1\)'):
        wider.init_weights()
    vim = save(tmp_path, 'vim.pth', VisionMamba(arch=dict(embed_dims=8, depth=1)).state_dict())
    with pytest.raises(ValueError, match=r"unexpected keys .*'layers.0.mixer"):
        build('v2', vim)


def test_converter_tool_output_loads_with_prefix(tmp_path, capsys):
    dst = tmp_path / 'out' / 'vmamba.pth'
    sd = dict(release('v2')['model'], **{'classifier.head.weight': torch.zeros(9, 32)})
    vmamba2mmssm.main([str(save(tmp_path, 'release.pth', sd)), str(dst)])
    assert 'tensors' in capsys.readouterr().out
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert not any(k.startswith('backbone.classifier') for k in converted)
    loads_as_release(tmp_path, 'v2', converted, prefix='backbone.')
