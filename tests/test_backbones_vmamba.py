import pytest
import torch
import torch.nn.functional as F

import mmssm.models.layers.ssm as ssm
from conftest import SUMMARY
from mmssm.models.backbones import VMamba
from mmssm.models.backbones.vmamba import SS2D
from mmssm_kernels import selective_scan_ref

NARROW = dict(embed_dims=16, depths=(1, 1, 2, 1))


def narrow(**kw):
    torch.manual_seed(0)
    model = VMamba(arch=kw.pop('arch', NARROW), **kw)
    model.init_weights()
    return model


def test_release_arch_sizes():
    counts = {arch: sum(p.numel() for p in VMamba(arch=arch).parameters()) / 1e6
              for arch in ('tiny', 'small', 'base', 'vanilla-tiny')}
    SUMMARY.append('VMamba backbone parameters: '
                   + ', '.join(f'{k} {v:.2f}M' for k, v in counts.items()))
    # the release's classifiers (VMamba-T/S/B 30M/50M/89M, vanilla-T 22.9M) less their heads
    # (LayerNorm + 768 or 1024 x 1000 linear) plus the four output norms
    for arch, paper, head in (('tiny', 30.2, 0.77), ('small', 50.1, 0.77), ('base', 88.9, 1.03),
                              ('vanilla-tiny', 22.9, 0.77)):
        assert abs(counts[arch] + head - paper) / paper < 0.02, (arch, counts[arch])


def test_arch_names_aliases_and_custom_dicts():
    assert VMamba(arch='t').arch == VMamba(arch='tiny').arch
    model = VMamba(arch=dict(embed_dims=24, depths=(1, 1, 2, 1)))
    assert model.dims == [24, 48, 96, 192] and model.arch['ssm_ratio'] == 1.0  # tiny's
    assert model.layers[2]['blocks'][0].op.d_state == 1
    with pytest.raises(ValueError, match=r"unknown \['heads'\]") as error:
        VMamba(arch=dict(embed_dims=24, heads=3))
    assert "'downsample'" in str(error.value) and "'ssm_ratio'" in str(error.value)
    with pytest.raises(ValueError, match="unknown arch 'huge'"):
        VMamba(arch='huge')
    with pytest.raises(ValueError, match="stem='pixel'"):
        VMamba(arch=dict(stem='pixel'))


@pytest.mark.parametrize('hw', [(64, 64), (50, 70), (37, 29)])
def test_vanilla_shapes_and_strides(hw):
    model = narrow(arch=dict(NARROW, **{k: v for k, v in VMamba.arch_zoo['vanilla-tiny'].items()
                                        if k not in NARROW}), out_indices=(0, 3)).eval()
    assert model.layers[0]['blocks'][0].mlp is None and model.layers[0]['downsample'].reduction
    outs = model(torch.randn(1, 3, *hw))
    assert [o.shape[1:] for o in outs] == [(16, -(-hw[0] // 4), -(-hw[1] // 4)),
                                           (128, -(-hw[0] // 32), -(-hw[1] // 32))]


def reference_ss2d(op, x, hw):
    """The release's SS2D: the four routes built as flipped and transposed copies, one plain scan
    per route, merged by undoing the flips and transposes."""
    H, W = hw
    batch, d = x.shape[0], op.d_inner
    xz = op.in_proj(x)
    u, z = xz.chunk(2, dim=-1) if op.gate else (xz, None)
    u = F.silu(op.conv2d(u.transpose(1, 2).reshape(batch, d, H, W)))
    rows, cols = u.flatten(2), u.transpose(2, 3).flatten(2)
    ys = []
    for k, route in enumerate((rows, cols, rows.flip(-1), cols.flip(-1))):
        dt, B, C = torch.einsum('bdl,cd->bcl', route, op.x_proj_weight[k]).split(
            (op.dt_rank, op.d_state, op.d_state), dim=1)
        delta = torch.einsum('brl,dr->bdl', dt, op.dt_projs_weight[k])
        ch = slice(k * d, (k + 1) * d)
        ys.append(selective_scan_ref(route, delta, -torch.exp(op.A_logs[ch]), B, C, op.Ds[ch],
                                     delta_bias=op.dt_projs_bias[k], delta_softplus=True))
    by_cols = ys[1] + ys[3].flip(-1)
    y = ys[0] + ys[2].flip(-1) + by_cols.view(batch, d, W, H).transpose(2, 3).flatten(2)
    y = op.out_norm(y.transpose(1, 2))
    if op.gate:
        y = y * F.silu(z)
    return op.out_proj(y)


@pytest.mark.parametrize('backend', ['torch', 'triton'])
@pytest.mark.parametrize('gate', [False, True], ids=['v2', 'v0'])
def test_ss2d_equals_flip_and_transpose_reference(backend, gate):
    torch.manual_seed(0)
    hw = (3, 5)
    op = SS2D(8, d_state=2, ssm_ratio=1.0, gate=gate)
    op.scan_backend = backend
    with torch.no_grad():
        op.A_logs.uniform_(0, 2)
        op.out_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, hw[0] * hw[1], 8, requires_grad=True)
    results = []
    for fn in (op, lambda x, hw: reference_ss2d(op, x, hw)):
        op.zero_grad()
        x.grad = None
        out = fn(x, hw)
        out.square().sum().backward()
        results.append([out, x.grad] + [p.grad for p in op.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_one_scan_call_with_shared_tokens_and_fp32_out(monkeypatch):
    """Each SS2D makes one selective_scan call over the four cross2d routes with the tokens
    shared (not copied per route), summed in the scan, fp32 out for a bfloat16 input."""
    calls = []

    def spy(u, *args, paths, out_dtype, backend, **kwargs):
        calls.append((u.shape, u.dtype, paths, out_dtype))
        return selective_scan_ref(u, *args, paths=paths, **kwargs).to(out_dtype)

    monkeypatch.setattr(ssm, 'selective_scan', spy)
    model = narrow().eval()
    # without gradients: the plain path (with them the fused mixer makes the same call through
    # selective_scan_fwd, tests/test_fused_layers.py)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        model(torch.randn(1, 3, 40, 24))
    assert len(calls) == sum(model.depths)
    shape, dtype, paths, out_dtype = calls[0]
    assert shape == (1, 16, 10 * 6) and dtype == torch.bfloat16 and out_dtype == torch.float32
    assert paths.routes == ('forward', 'col', 'reverse', 'col_reverse')
    assert paths.hw == (10, 6) and paths.merge == 'sum'
    assert calls[-1][0] == (1, 128, 2 * 1) and calls[-1][2].hw == (2, 1)


def test_layer_depth_runs_over_all_stages():
    model = narrow()  # depths 1, 1, 2, 1
    depth = {name: model.get_layer_depth(name, 'backbone.')[0]
             for name in ('backbone.patch_embed.0.weight', 'backbone.layers.0.blocks.0.op.A_logs',
                          'backbone.layers.2.blocks.1.mlp.fc1.weight',
                          'backbone.layers.2.downsample.1.weight', 'backbone.outnorm3.weight',
                          'decode_head.conv_seg.weight')}
    assert depth == {'backbone.patch_embed.0.weight': 0,
                     'backbone.layers.0.blocks.0.op.A_logs': 1,
                     'backbone.layers.2.blocks.1.mlp.fc1.weight': 4,
                     'backbone.layers.2.downsample.1.weight': 4, 'backbone.outnorm3.weight': 5,
                     'decode_head.conv_seg.weight': 6}
    assert model.get_layer_depth('x', 'backbone.')[1] == 7
    assert {'layers.0.blocks.0.op.A_logs', 'layers.0.blocks.0.op.Ds',
            'layers.0.blocks.0.op.dt_projs_bias'} <= model.no_weight_decay()
