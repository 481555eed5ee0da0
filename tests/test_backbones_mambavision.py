"""MambaVision: shapes and strides, arch settings, windows (official and masked padding), the
mixer's scan, stochastic depth, frozen stages."""
import pytest
import torch

import mmssm.models.layers.ssm as ssm_module
from mmssm.models.backbones.mambavision import MambaVision, MambaVisionMixer
from mmssm.models.backbones.mambavision_windows import window_layout
from mmssm_kernels import ScanPaths

NARROW = dict(embed_dims=16, stem_channels=8, depths=(1, 1, 3, 2), num_heads=(1, 1, 2, 4))


def build(**kw):
    torch.manual_seed(kw.pop('seed', 0))
    model = MambaVision(arch=kw.pop('arch', NARROW), **kw)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('hw', [(64, 64), (97, 131), (32, 200)])
def test_shapes_and_strides(hw):
    model = build(window_size=(8, 8, 3, 2))
    outs = model(torch.randn(2, 3, *hw))
    h, w = hw
    for i, out in enumerate(outs):
        size = (h, w)
        for _ in range(i + 2):  # the stem halves twice, each downsampling once more
            size = tuple((s + 1) // 2 for s in size)
        assert out.shape == (2, 16 * 2**i, *size)


def test_out_indices_and_in_channels():
    model = build(out_indices=(1, -1), in_channels=1)
    outs = model(torch.randn(1, 1, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    assert not hasattr(model, 'outnorm0')
    with pytest.raises(ValueError, match=r'\(batch, 1, H, W\).*in_channels'):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match='out of range'):
        build(out_indices=(4, ))


def test_arch_zoo_aliases_and_custom_dicts():
    assert build(arch='tiny', init_cfg=None).arch == MambaVision.arch_zoo['T']
    model = MambaVision(arch=dict(embed_dims=16, depths=(1, 1, 2, 2)))
    assert model.arch == {**MambaVision.arch_zoo['T'], 'embed_dims': 16, 'depths': (1, 1, 2, 2)}
    assert model.dims == [16, 32, 64, 128]
    with pytest.raises(ValueError, match=r"accepts \['depths', 'embed_dims', 'layer_scale', "
                                         r"'num_heads', 'stem_channels'\].*unknown \['dim'\]"):
        MambaVision(arch=dict(dim=16))
    with pytest.raises(ValueError, match='unknown arch'):
        MambaVision(arch='XL')
    with pytest.raises(ValueError, match='4 values each'):
        MambaVision(window_size=(8, 8, 14))


def test_hybrid_stages_follow_the_official_mamba_attention_split():
    model = MambaVision(arch=dict(depths=(1, 3, 5, 4)))
    for stage, mambas in ((2, 3), (3, 2)):
        kinds = [isinstance(b.op, MambaVisionMixer) for b in model.levels[stage].blocks]
        assert kinds == [True] * mambas + [False] * (len(kinds) - mambas)


@pytest.mark.parametrize('mask_padding', [False, True])
@pytest.mark.parametrize('hw', [(16, 24), (13, 21), (5, 6)])
def test_window_partition_then_reverse_is_identity(hw, mask_padding):
    layout = window_layout(hw, 8, mask_padding)
    x = torch.randn(2, 3, *hw)
    windows = layout.partition(x)
    assert windows.shape == (2 * layout.num_windows, layout.length, 3)
    torch.testing.assert_close(layout.reverse(windows, 2), x, rtol=0, atol=0)


def test_official_windows_are_padded_row_major_squares():
    layout = window_layout((5, 6), 4, mask_padding=False)
    assert layout.pad == (3, 2) and layout.num_windows == 4 and layout.length == 16
    # window (0, 1) walks rows 0..3 of columns 4..7 of the padded 8x8 map
    expected = [r * 8 + c for r in range(4) for c in range(4, 8)]
    assert layout.index.view(4, 16)[1].tolist() == expected
    assert layout.token_mask(2) is None


def test_masked_windows_put_image_tokens_first_and_shrink_to_the_fullest():
    layout = window_layout((5, 6), 8, mask_padding=True)
    assert layout.num_windows == 1 and layout.length == 30
    assert layout.token_mask(1) is None  # the only window holds nothing but image tokens now
    layout = window_layout((5, 6), 4, mask_padding=True)
    valid = layout.valid
    assert valid.sum(1).tolist() == [16, 8, 4, 2]
    # the window at rows 4, columns 4..5: its two image tokens, then padding
    assert layout.index.view(4, 16)[3, :2].tolist() == [4 * 6 + 4, 4 * 6 + 5]
    assert not valid[3, 2:].any()


def test_official_and_masked_modes_agree_without_padding_and_differ_with_it():
    official = build(window_size=(8, 8, 4, 2))
    masked = build(window_size=(8, 8, 4, 2), mask_padding=True)
    masked.load_state_dict(official.state_dict())
    x = torch.randn(1, 3, 128, 64)  # stage 3: 8x4, stage 4: 4x2: whole windows
    for a, b in zip(official(x), masked(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    x = torch.randn(1, 3, 112, 80)  # stage 3: 7x5, stage 4: 4x3
    outs = list(zip(official(x), masked(x)))
    torch.testing.assert_close(outs[1][0], outs[1][1], rtol=0, atol=0)  # conv stages: no windows
    assert (outs[2][0] - outs[2][1]).abs().max() > 1e-3
    assert (outs[3][0] - outs[3][1]).abs().max() > 1e-3


def test_masked_windows_equal_each_window_run_on_its_image_tokens_alone():
    """mask_padding: an edge window's output is what the blocks give on its image tokens as a
    sequence of their own, as if the padding did not exist."""
    model = build(window_size=(8, 8, 4, 2), mask_padding=True)
    stage = model.levels[2]
    x = torch.randn(2, model.dims[2], 6, 7)
    with torch.no_grad():
        out = stage(x, model.run_block)
        for r0 in (0, 4):
            for c0 in (0, 4):
                crop = x[:, :, r0:r0 + 4, c0:c0 + 4]
                tokens = crop.flatten(2).transpose(1, 2)
                for block in stage.blocks:
                    tokens = block(tokens, None)
                expected = tokens.transpose(1, 2).reshape(crop.shape)
                torch.testing.assert_close(out[:, :, r0:r0 + 4, c0:c0 + 4], expected)


def test_the_mixer_scans_forward_through_the_shared_interface(monkeypatch):
    calls = []
    scan = ssm_module.selective_scan

    def recorded(u, delta, A, B, C, D=None, z=None, delta_bias=None, **kw):
        calls.append((u.shape, kw['paths'], z, A.shape))
        return scan(u, delta, A, B, C, D, z, delta_bias, **kw)

    monkeypatch.setattr(ssm_module, 'selective_scan', recorded)
    model = build(window_size=(8, 8, 4, 2))
    # without gradients: the plain path (with them the fused mixer makes the same call through
    # selective_scan_fwd, tests/test_fused_layers.py)
    with torch.no_grad():
        model(torch.randn(1, 3, 128, 128))
    # stage 3: 2 Mamba blocks on 4 windows of 16 tokens, stage 4: 1 on 4 windows of 4 tokens
    assert [c[0] for c in calls] == [(4, 32, 16), (4, 32, 16), (4, 64, 4)]
    assert all(c[1] == ScanPaths.forward() and c[2] is None for c in calls)
    assert [c[3] for c in calls] == [(32, 8)] * 2 + [(64, 8)]


def test_double_dt_bias_is_the_official_default_and_a_switch():
    torch.manual_seed(0)
    mixer = MambaVisionMixer(32)
    u = torch.randn(2, 16, 10)
    double, B, _ = mixer.project(u)
    mixer.double_dt_bias = False
    single, B2, _ = mixer.project(u)
    bias = mixer.dt_projs_bias.detach().view(1, 16, 1)
    torch.testing.assert_close(double - single, bias.expand(2, 16, 10))
    torch.testing.assert_close(B, B2)
    with pytest.raises(ValueError, match='even dim'):
        MambaVisionMixer(33)


def test_drop_path_rate_is_honoured():
    model = build(drop_path_rate=0.3)
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for level in model.levels for b in level.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, 7))
    x = torch.randn(2, 3, 64, 64)
    model.train()
    torch.manual_seed(1)
    a = model(x)[-1]
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x)[-1])


def test_frozen_stages():
    model = build(frozen_stages=2)
    model.train()
    frozen = [model.patch_embed, model.levels[0], model.levels[1], model.outnorm0, model.outnorm1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert not model.levels[1].blocks[0].norm1.training
    assert all(p.requires_grad for p in model.levels[2].parameters())
    assert model.levels[2].training


def test_layer_depth_counts_blocks_over_stages():
    model = build()
    assert model.num_blocks == 7
    assert model.get_layer_depth('backbone.patch_embed.conv_down.0.weight', 'backbone.') == (0, 9)
    assert model.layer_depth('levels.2.blocks.1.op.A_logs') == 4
    assert model.layer_depth('levels.1.downsample.reduction.0.weight') == 2
    assert model.layer_depth('outnorm3.weight') == 7
