import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmssm  # noqa: F401
from mmssm.models.backbones import VisionMamba


class Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = VisionMamba(arch=dict(embed_dims=16, depth=3, d_state=2), out_indices=(2, ))
        self.decode_head = nn.Conv2d(16, 5, 1)


def param_groups(rate, scope='mmseg'):
    init_default_scope(scope)
    model = Segmentor()
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=rate)))
    by_param = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            by_param[p] = (group['lr'], group['weight_decay'])
    return {name: by_param[p] for name, p in model.named_parameters()}


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_lr_decays_with_block_depth_and_follows_vim_names(scope):
    groups = param_groups(0.5, scope)
    lr = {name: g[0] for name, g in groups.items()}
    assert lr['decode_head.weight'] == pytest.approx(1e-3)
    assert lr['backbone.layers.2.mixer.in_proj.weight'] == pytest.approx(1e-3 * 0.5)
    assert lr['backbone.layers.0.mixer.x_proj_weight'] == pytest.approx(1e-3 * 0.5**3)
    assert lr['backbone.patch_embed.weight'] == pytest.approx(1e-3 * 0.5**4)
    assert lr['backbone.pos_embed'] == pytest.approx(1e-3 * 0.5**4)


def test_no_weight_decay_for_norms_biases_A_D_dt_bias_and_embeddings():
    wd = {name: g[1] for name, g in param_groups(0.9).items()}
    for name in ('backbone.pos_embed', 'backbone.layers.1.mixer.A_logs',
                 'backbone.layers.1.mixer.Ds', 'backbone.layers.1.norm.weight',
                 'backbone.layers.1.mixer.dt_projs_bias', 'decode_head.bias'):
        assert wd[name] == 0, name
    for name in ('backbone.layers.1.mixer.in_proj.weight', 'backbone.patch_embed.weight',
                 'backbone.layers.1.mixer.x_proj_weight', 'backbone.layers.1.mixer.dt_projs_weight',
                 'decode_head.weight'):
        assert wd[name] == 0.05, name
