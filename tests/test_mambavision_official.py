"""MambaVision against NVIDIA's own code: with the same official-layout weights, our stage outputs
equal those of the official dense backbone (``MM_mamba_vision``) to 1e-4 in fp32.

``fixtures/mambavision_official.pt`` holds, for each case, the official model's state-dict layout
(names and shapes) and its stage outputs, sampled (all channel means, and 64 channels at 16
positions per stage). It was made by running the unmodified official file
(NVlabs/MambaVision semantic_segmentation/tools/mamba_vision.py) on the CPU, with mamba_ssm's scan
replaced by a token-loop port of ``selective_scan_ref``, on the weights that ``official_weights``
below makes from the stored layout (tools/analysis_tools/mambavision_official_outputs.py wrote it;
the command is in its docstring). Here the same weights are saved as NVIDIA's release does
(``{'state_dict': ...}``, ``module.`` prefixes, classifier) or as the official mmseg models do
(``backbone.`` prefix) and loaded through ``init_cfg``.
"""
import math
from pathlib import Path

import pytest
import torch

from mmssm.models.backbones.mambavision import MambaVision

FIXTURE = Path(__file__).parent / 'fixtures/mambavision_official.pt'
CASES = {
    # MambaVision-T, at its classification windows: 224 needs no padding, 256x320 pads stage 3
    # (16x20 -> 28x28) and stage 4 (8x10 -> 14x14)
    'T': dict(
        official=dict(dim=80, in_dim=32, depths=(1, 3, 8, 4), num_heads=(2, 4, 8, 16),
                      window_size=(8, 8, 14, 7), mlp_ratio=4, layer_scale=None),
        ours=dict(arch='T', window_size=(8, 8, 14, 7)),
        seed=0, sizes=((224, 224), (256, 320)), file='release'),
    # a narrow model with layer scale (as B and up) and odd depths, padded in both window stages
    'narrow_layer_scale': dict(
        official=dict(dim=32, in_dim=16, depths=(2, 1, 3, 2), num_heads=(1, 2, 4, 8),
                      window_size=(8, 8, 6, 4), mlp_ratio=4, layer_scale=0.5),
        ours=dict(arch=dict(embed_dims=32, stem_channels=16, depths=(2, 1, 3, 2),
                            num_heads=(1, 2, 4, 8), layer_scale=0.5),
                  window_size=(8, 8, 6, 4)),
        seed=1, sizes=((96, 160), ), file='dense'),
}


def official_weights(layout, seed, fresh_outnorms=False):
    """Random weights for a state-dict layout [(name, shape)], the same on every machine: matrices
    scaled by 1/sqrt(fan-in), norm weights around 1, positive running variances, A in [1, 8].
    ``fresh_outnorms``: the dense output norms as newly made (a classification release has none)."""
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in layout:
        if name.endswith('num_batches_tracked'):
            weights[name] = torch.tensor(0)
        elif name.endswith('running_var'):
            weights[name] = torch.rand(shape, generator=g) + 0.5
        elif name.endswith('A_log'):
            weights[name] = torch.log(1 + 7 * torch.rand(shape, generator=g))
        elif len(shape) > 1:
            weights[name] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif 'norm' in name and name.endswith('weight'):
            weights[name] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            weights[name] = 0.1 * torch.randn(shape, generator=g)
        if fresh_outnorms and name.startswith('outnorm'):
            weights[name] = torch.ones(shape) if name.endswith('weight') else torch.zeros(shape)
    return weights


def checkpoint_file(weights, kind, path):
    """``weights`` saved as NVIDIA's classification release does ('release': classifier, no output
    norms, DDP's module. prefixes) or as the official mmseg models do ('dense': backbone.)."""
    if kind == 'release':
        sd = {f'module.{k}': v for k, v in weights.items() if not k.startswith('outnorm')}
        sd.update({'module.norm.weight': torch.ones(8), 'module.head.weight': torch.zeros(10, 8)})
        torch.save({'state_dict': sd, 'epoch': 310}, path)
    else:
        sd = {f'backbone.{k}': v for k, v in weights.items()}
        sd['decode_head.conv_seg.weight'] = torch.zeros(150, 512, 1, 1)
        torch.save({'state_dict': sd, 'meta': {'iter': 160000}}, path)
    return str(path)


def inputs(hw):
    return torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(7))


def sample(out, stage):
    """Every channel's mean, and 64 channels at 16 positions, of a (1, C, h, w) stage output."""
    g = torch.Generator().manual_seed(100 + stage)
    flat = out[0].flatten(1)
    channels = torch.randperm(flat.shape[0], generator=g)[:64]
    positions = torch.randperm(flat.shape[1], generator=g)[:16]
    return dict(mean=flat.mean(1), values=flat[channels][:, positions])


@pytest.mark.parametrize('name', list(CASES))
def test_stage_outputs_equal_the_official_dense_backbone(name, tmp_path):
    case, stored = CASES[name], torch.load(FIXTURE, weights_only=True)[name]
    weights = official_weights(stored['layout'], case['seed'], case['file'] == 'release')
    path = checkpoint_file(weights, case['file'], tmp_path / 'official.pth')
    model = MambaVision(**case['ours'], init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    model.eval()
    for hw in case['sizes']:
        with torch.no_grad():
            outs = model(inputs(hw))
        for stage, (out, expected) in enumerate(zip(outs, stored['outputs'][hw])):
            got = sample(out, stage)
            for key in ('mean', 'values'):
                torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-4,
                                           msg=f'{name} at {hw}, stage {stage}, {key}')
