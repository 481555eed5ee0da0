"""What every mmssm backbone promises, checked on a small model of each family.

A family joins by one line in CASES: its config (a small arch) and (channels, stride) of each
output, and by the numbers of outputs it can give in COUNTS. Output sizes follow
ceil(size / stride) for any input size, odd ones included, and the backbone says so beforehand
(``out_channels``, timm's ``feature_info``).
"""
import math

import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import MODELS as SEG_MODELS
from torch.overrides import TorchFunctionMode

import mmssm  # noqa: F401  (registers)
import mmssm.models.layers.fused as fused
import mmssm.models.layers.ssm as ssm
from mmssm.models.backbones import SSMBackbone
from mmssm_kernels import interface

CASES = {
    'vim': (dict(type='VisionMamba', arch=dict(embed_dims=16, depth=4, d_state=4), img_size=32,
                 out_indices=(1, 3)), [(16, 16), (16, 16)]),
    'vmamba': (dict(type='VMamba', arch=dict(embed_dims=8, depths=(1, 1, 2, 1))),
               [(8, 4), (16, 8), (32, 16), (64, 32)]),
    'mambavision': (dict(type='MambaVision', arch=dict(embed_dims=8, stem_channels=8,
                         depths=(1, 1, 2, 2), num_heads=(1, 1, 2, 4)), window_size=(8, 8, 4, 2)),
                    [(8, 4), (16, 8), (32, 16), (64, 32)]),
}
COUNTS = {'vim': 4, 'vmamba': 4, 'mambavision': 4}  # outputs each small arch can give
SIZES = [(32, 48), (33, 47), (20, 13)]


def build(cfg, registry=SEG_MODELS, **kw):
    torch.manual_seed(0)
    model = registry.build({**cfg, **kw})
    model.init_weights()
    return model


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request):
    return CASES[request.param]


def test_registered_in_mmseg_and_mmdet(case):
    cfg, _ = case
    seg, det = (build(cfg, registry) for registry in (SEG_MODELS, DET_MODELS))
    assert type(seg) is type(det) and isinstance(seg, SSMBackbone)
    for a, b in zip(seg.state_dict().values(), det.state_dict().values()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('hw', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_output_channels_and_strides(case, hw):
    cfg, expected = case
    model = build(cfg).eval()
    outs = model(torch.randn(2, 3, *hw))
    assert [tuple(o.shape) for o in outs] == [
        (2, c, math.ceil(hw[0] / s), math.ceil(hw[1] / s)) for c, s in expected]
    assert all(torch.isfinite(o).all() for o in outs)
    assert model.out_channels == [c for c, _ in expected]
    assert [info['reduction'] for info in model.feature_info] == [s for _, s in expected]


@pytest.mark.parametrize('family', list(CASES))
@pytest.mark.parametrize('out_indices', [(0, ), (-1, ), (1, 3)], ids=['first', 'last', 'odd'])
def test_out_channels_and_feature_info_say_what_forward_returns(family, out_indices):
    cfg = {**CASES[family][0], 'out_indices': out_indices}
    model = build(cfg).eval()
    hw = (33, 47)
    outs = model(torch.randn(1, 3, *hw))
    assert model.out_indices == sorted(i % COUNTS[family] for i in out_indices)
    assert model.out_channels == [o.shape[1] for o in outs]
    modules = dict(model.named_modules())
    for info, out in zip(model.feature_info, outs, strict=True):
        assert out.shape[2:] == tuple(math.ceil(s / info['reduction']) for s in hw)
        assert info['module'] in modules


@pytest.mark.parametrize('setting, value, message', [
    ('frozen_stages', 5, 'frozen_stages must be a whole number from -1 (train all) to 4 (freeze '
     'all), got 5'),
    ('frozen_stages', -2, 'frozen_stages must be a whole number from -1 (train all) to 4 (freeze '
     'all), got -2'),
    ('drop_path_rate', 1.0, 'drop_path_rate must be in [0, 1), got 1.0'),
    ('drop_path_rate', -0.1, 'drop_path_rate must be in [0, 1), got -0.1'),
    ('embed_dims', 0, 'embed_dims must be a whole number of at least 1, got 0'),
])
def test_settings_out_of_range_are_named(case, setting, value, message):
    cfg, _ = case  # frozen_stages counts 4 parts in each: Vim's 4 blocks, the others' stages
    if setting == 'embed_dims':
        cfg = {**cfg, 'arch': {**cfg['arch'], 'embed_dims': value}}
    else:
        cfg = {**cfg, setting: value}
    with pytest.raises(ValueError) as error:
        SEG_MODELS.build(cfg)
    assert str(error.value) == f'{cfg["type"]}: {message}'


@pytest.mark.parametrize('window_size', [7, (8, 8, 0, 2), (8, 8, 4.0, 2), '8842'])
def test_mambavision_window_size_is_checked(window_size):
    cfg = {**CASES['mambavision'][0], 'window_size': window_size}
    with pytest.raises(ValueError, match=r'^MambaVision: window_size must be|4 values each'):
        SEG_MODELS.build(cfg)


def test_wrong_channel_count_is_named(case):
    cfg, _ = case
    with pytest.raises(ValueError, match=rf'^{cfg["type"]} expects images \(batch, 3, H, W\), got '
                                         r'\(1, 4, 32, 32\); set in_channels'):
        build(cfg)(torch.randn(1, 4, 32, 32))


def test_gradient_checkpointing_gives_equal_gradients(case):
    cfg, _ = case
    x = torch.randn(1, 3, 33, 47)
    grads = []
    for with_cp in (False, True):
        model = build(cfg, with_cp=with_cp).train()
        sum(o.square().sum() for o in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_frozen_stages_get_no_gradients_and_stay_in_eval(case):
    cfg, _ = case
    model = build(cfg, frozen_stages=1).train()
    parts = model.frozen_parts()
    frozen = {id(p) for part in parts
              for p in (part.parameters() if isinstance(part, torch.nn.Module) else [part])}
    assert frozen and all(not m.training for m in parts if isinstance(m, torch.nn.Module))
    sum(o.square().sum() for o in model(torch.randn(1, 3, 32, 32))).backward()
    for name, p in model.named_parameters():
        assert (p.grad is None) == (id(p) in frozen), name


class RouteCopies(TorchFunctionMode):
    """Records what building scan routes by hand does: flipping, rolling or rotating activations,
    or joining one tensor's values in two orders (x with its transpose or flip: equal values once
    sorted, which two different activations of random inputs never are)."""

    def __init__(self):
        super().__init__()
        self.found = []
        self.paused = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = getattr(func, '__name__', str(func))
        if name in ('flip', 'fliplr', 'flipud', 'roll', 'rot90') and not isinstance(
                args[0], torch.nn.Parameter):
            self.found.append(f'{name} {tuple(args[0].shape)}')
        if name in ('cat', 'stack', 'concat', 'concatenate'):
            with torch.no_grad():
                values = [t.detach().flatten().sort().values for t in args[0]]
            if any(a.numel() > 1 and a.shape == b.shape and torch.equal(a, b)
                   for i, a in enumerate(values) for b in values[i + 1:]):
                self.found.append(f'{name} of one tensor in two orders')
        return func(*args, **kwargs)


def unrecorded_call(fn, mode):
    def call(*args, **kwargs):
        mode.paused = True
        try:
            return fn(*args, **kwargs)
        finally:
            mode.paused = False
    return call


def test_no_route_copies(case, monkeypatch):
    cfg, _ = case
    model = build(cfg)
    mode = RouteCopies()
    # how the scan itself lays out routes is not the backbone's, called plainly or by the fused
    # mixer
    monkeypatch.setattr(ssm, 'selective_scan', unrecorded_call(ssm.selective_scan, mode))
    for name in ('selective_scan_fwd', 'selective_scan_bwd'):
        monkeypatch.setattr(fused, name, unrecorded_call(getattr(fused, name), mode))
    with mode:
        sum(o.sum() for o in model(torch.randn(1, 3, 32, 48))).backward()
    assert mode.found == []


def test_route_copies_are_detected():
    """The check above can fail: a hand-made cross-scan trips it."""
    x = torch.randn(1, 4, 3, 5)
    with RouteCopies() as mode:
        rows = x.flatten(2)
        torch.stack((rows, x.transpose(2, 3).flatten(2)))
        rows.flip(-1)
    assert mode.found == ['stack of one tensor in two orders', 'flip (1, 4, 15)']


def test_layer_depth_places_every_parameter_and_nothing_else(case):
    """Stem 0, blocks 1..num_blocks (stage after stage), and None (the heads' depth,
    num_layers - 1) for a name the backbone does not have, in every family alike."""
    cfg, _ = case
    model = build(cfg)
    depths = {name: model.layer_depth(name) for name, _ in model.named_parameters()}
    assert set(depths.values()) == set(range(model.num_blocks + 1))
    assert depths['patch_embed.' + next(n for n, _ in model.patch_embed.named_parameters())] == 0
    num_layers = model.num_blocks + 2
    assert model.layer_depth('unknown.weight') is None
    for name in ('backbone.unknown.weight', 'decode_head.conv_seg.weight'):
        assert model.get_layer_depth(name, 'backbone.') == (num_layers - 1, num_layers)


def test_scan_backend_is_the_constructor_argument_or_the_global_default(case, monkeypatch):
    cfg, _ = case
    backends = []
    scan = ssm.selective_scan

    def spy(*args, backend, **kwargs):
        backends.append(backend)
        return scan(*args, backend=backend, **kwargs)

    monkeypatch.setattr(ssm, 'selective_scan', spy)
    streamed = ssm.streamed_selective_scan

    def streamed_spy(*args, **kwargs):  # Vim without gradients: the PyTorch path, streamed
        backends.append('torch')
        return streamed(*args, **kwargs)

    monkeypatch.setattr(ssm, 'streamed_selective_scan', streamed_spy)
    monkeypatch.setattr(interface, 'DEFAULT_BACKEND', 'no such backend')  # MMSSM_SCAN_BACKEND
    x = torch.randn(1, 3, 32, 32)
    # without gradients the mixers call selective_scan itself, or Vim's its streamed PyTorch
    # path (with them, the fused function's selective_scan_fwd, which takes the same backend)
    with torch.no_grad():
        build(cfg, scan_backend='torch')(x)
        assert backends and set(backends) == {'torch'}
        with pytest.raises(ValueError, match="MMSSM_SCAN_BACKEND='no such backend'"):
            build(cfg)(x)  # None: the global default
    with pytest.raises(ValueError, match=rf"^{cfg['type']}: scan_backend='cuda'; use one of"):
        build(cfg, scan_backend='cuda')
