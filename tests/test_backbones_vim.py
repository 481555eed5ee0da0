import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import MODELS as SEG_MODELS

import mmssm  # noqa: F401  (registers)
from conftest import SUMMARY
from mmssm.models.backbones import VisionMamba
from mmssm.models.backbones.vim import BiMambaMixer
from mmssm_kernels import selective_scan_ref

SMALL = dict(embed_dims=32, depth=4, d_state=4)


def small_vim(**kw):
    kw.setdefault('arch', SMALL)
    kw.setdefault('img_size', 64)
    kw.setdefault('out_indices', (1, 3))
    torch.manual_seed(0)
    model = VisionMamba(**kw)
    model.init_weights()
    return model


def test_registered_in_mmseg_and_mmdet():
    for registry in (SEG_MODELS, DET_MODELS):
        model = registry.build(dict(type='VisionMamba', arch=SMALL, out_indices=(3, )))
        assert isinstance(model, VisionMamba)


@pytest.mark.parametrize('hw,grid', [
    ((64, 64), (4, 4)),      # the pretraining size
    ((48, 80), (3, 5)),      # non-square, pos-embed resized
    ((50, 70), (4, 5)),      # not divisible by 16: padded
    ((10, 33), (1, 3)),      # smaller than a patch
])
@pytest.mark.parametrize('with_cls_token', [False, True])
def test_output_shapes_and_stride(hw, grid, with_cls_token):
    model = small_vim(with_cls_token=with_cls_token).eval()
    outs = model(torch.randn(2, 3, *hw))
    assert len(outs) == 2
    for out in outs:
        assert out.shape == (2, 32, *grid)
        assert torch.isfinite(out).all()


def test_official_arch_sizes():
    counts = {arch: sum(p.numel() for p in VisionMamba(arch=arch).parameters()) / 1e6
              for arch in ('tiny', 'small')}
    SUMMARY.append('Vim backbone parameters: ' + ', '.join(f'{k} {v:.2f}M' for k, v in counts.items()))
    # the paper: Vim-Ti 7M, Vim-S 26M
    assert 6.5 < counts['tiny'] < 7.5 and 25 < counts['small'] < 27


def test_negative_out_indices_and_errors():
    assert small_vim(out_indices=(-1, 0)).out_indices == [0, 3]
    with pytest.raises(ValueError, match='out of range'):
        small_vim(out_indices=(4, ))
    with pytest.raises(ValueError, match="unknown arch 'huge'"):
        VisionMamba(arch='huge')
    with pytest.raises(ValueError, match="unknown \\['heads'\\]"):
        VisionMamba(arch=dict(embed_dims=8, depth=2, heads=3))
    with pytest.raises(ValueError, match='expects images \\(batch, 3, H, W\\), got \\(1, 4, 32, 32\\)'):
        small_vim()(torch.randn(1, 4, 32, 32))


def test_mixer_matches_official_bimamba_v2_with_flips():
    """The official mixer runs the backward direction on flipped copies; ours walks it as the
    reverse scan route with a mirrored conv. Both must agree."""
    torch.manual_seed(0)
    mixer = BiMambaMixer(16, d_state=4)
    x = torch.randn(2, 11, 16)
    xz = mixer.in_proj(x).transpose(1, 2)

    def direction(xz, conv, k):
        """Route k of the official mixer, with its own x_proj, dt_proj, A and D."""
        u, z = xz.chunk(2, dim=1)
        u = F.silu(conv(u)[..., :xz.shape[-1]])
        d = mixer.d_inner
        dt, B, C = (u.transpose(1, 2) @ mixer.x_proj_weight[k].t()).split((mixer.dt_rank, 4, 4), dim=-1)
        delta = (dt @ mixer.dt_projs_weight[k].t()).transpose(1, 2)
        return selective_scan_ref(u, delta, -torch.exp(mixer.A_logs[k * d:(k + 1) * d]),
                                  B.transpose(1, 2), C.transpose(1, 2), mixer.Ds[k * d:(k + 1) * d],
                                  z, mixer.dt_projs_bias[k], delta_softplus=True)

    fwd = direction(xz, mixer.conv1d, 0)
    bwd = direction(xz.flip(-1), mixer.conv1d_b, 1).flip(-1)
    expected = mixer.out_proj(((fwd + bwd) / 2).transpose(1, 2))
    torch.testing.assert_close(mixer(x), expected, rtol=1e-4, atol=1e-5)


def test_gradient_checkpointing_gives_same_gradients():
    x = torch.randn(1, 3, 32, 48)
    grads = []
    for with_cp in (False, True):
        model = small_vim(with_cp=with_cp, drop_path_rate=0.0).train()
        sum(o.square().sum() for o in model(x)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_frozen_stages():
    model = small_vim(frozen_stages=2).train()
    assert not model.patch_embed.weight.requires_grad and not model.pos_embed.requires_grad
    assert not any(p.requires_grad for p in model.layers[1].parameters())
    assert all(p.requires_grad for p in model.layers[2].parameters())
    assert not model.layers[0].training and model.layers[2].training


def test_drop_path_rises_from_zero():
    model = small_vim(drop_path_rate=0.3)
    assert isinstance(model.layers[0].drop_path, torch.nn.Identity)
    assert model.layers[-1].drop_path.drop_prob == pytest.approx(0.3 * 2 / 3)


def test_triton_and_torch_scan_backends_agree_in_the_backbone():
    """The whole backbone, forward and backward, on the Triton kernel (the interpreter without a
    GPU) against the PyTorch path."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    x = torch.randn(1, 3, 32, 48, device=device)
    results = []
    for backend in ('torch', 'triton'):
        model = small_vim(arch=dict(embed_dims=8, depth=2, d_state=4), out_indices=(0, 1),
                          scan_backend=backend).to(device)
        outs = model(x)
        sum((o * o).sum() for o in outs).backward()
        results.append((outs, [p.grad for p in model.parameters()]))
    (outs_t, grads_t), (outs_k, grads_k) = results
    for a, b in zip(outs_t, outs_k):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads_t, grads_k):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('depth,expected', [(24, [5, 11, 17, 23]), (12, [2, 5, 8, 11]), (2, [0, 1])])
def test_default_out_indices_are_the_quarters(depth, expected):
    assert VisionMamba(arch=dict(embed_dims=8, depth=depth)).out_indices == expected
