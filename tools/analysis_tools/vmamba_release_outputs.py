"""Reference outputs of the VMamba release's own code, for comparing mmssm's VMamba with it.

Runs the release's ``Backbone_VSSM`` (a checkout of MzeroMiko/VMamba, its
classification/models/vmamba.py; CPU: its PyTorch selective scan and cross-scan) with random
weights and saves {'model': state_dict (release layout), 'outputs': {size: stage outputs},
'seed': 1, 'sizes': ...}; inputs are drawn with torch.Generator().manual_seed(1), one per size in
order. tests/fixtures/vmamba_release_{v2,v0}.pth were made with

    VMAMBA_RELEASE=path/to/VMamba python tools/analysis_tools/vmamba_release_outputs.py \
        tests/fixtures/vmamba_release_v2.pth v2 8 1,2,1 1.0 1 32x32,37x29 fp16
    ... tests/fixtures/vmamba_release_v0.pth v0 8 1,1,1 2.0 4 32x32,40x24 fp16

usage: OUT.pth v2|v0 DIMS DEPTHS(csv) SSM_RATIO D_STATE SIZES(HxW,...) [fp16]
"""
import contextlib
import os
import sys
import types

import torch

# the official file imports fvcore/einops for FLOP counting and mamba2 only; not used here
for name in ('fvcore', 'fvcore.nn', 'einops'):
    sys.modules[name] = types.ModuleType(name)
for fn in ('FlopCountAnalysis', 'flop_count_str', 'flop_count', 'parameter_count'):
    setattr(sys.modules['fvcore.nn'], fn, None)
sys.modules['einops'].rearrange = sys.modules['einops'].repeat = None
# the release enters torch.cuda.device(x.device) around its cross-scan, which a CPU tensor refuses
_cuda_device = torch.cuda.device
torch.cuda.device = lambda d: (contextlib.nullcontext() if torch.device(d).type == 'cpu'
                               else _cuda_device(d))
sys.path.insert(0, os.path.join(os.environ['VMAMBA_RELEASE'], 'classification', 'models'))
import vmamba as official  # noqa: E402

out, version, dims, depths, ratio, d_state, sizes = sys.argv[1:8]
depths = [int(d) for d in depths.split(',')]
common = dict(dims=int(dims), depths=depths, ssm_ratio=float(ratio), ssm_d_state=int(d_state),
              ssm_dt_rank='auto', drop_path_rate=0.0)
if version == 'v2':
    cfg = dict(ssm_conv=3, ssm_conv_bias=False, forward_type='v05_noz', mlp_ratio=4.0,
               downsample_version='v3', patchembed_version='v2', norm_layer='ln2d')
else:
    cfg = dict(ssm_conv=3, ssm_conv_bias=True, forward_type='v0', mlp_ratio=0.0,
               downsample_version='v1', patchembed_version='v1', norm_layer='ln')
torch.manual_seed(0)
model = official.Backbone_VSSM(out_indices=tuple(range(len(depths))), **common, **cfg).eval()
# random everything, so that no parameter is checked only at its init value
with torch.no_grad():
    for name, p in model.named_parameters():
        if 'A_logs' in name:
            p.copy_(torch.rand_like(p) * 2)
        elif 'dt_projs_bias' in name:
            p.copy_(torch.randn_like(p) * 0.5 - 3)
        elif p.dim() == 1:  # norms around 1, biases and D around 0
            p.copy_(float(p.detach().mean() > 0.5) + 0.1 * torch.randn_like(p))
        else:
            per_route = name.endswith(('projs_weight', 'x_proj_weight'))
            fan_in = p.shape[-1] if per_route else p[0].numel()
            p.copy_(torch.randn_like(p) / fan_in**0.5)
    if 'fp16' in sys.argv[8:]:  # stored in half precision, computed in fp32 from the same values
        for p in model.parameters():
            p.copy_(p.half().float())
results = {}
gen = torch.Generator().manual_seed(1)
for hw in sizes.split(','):
    H, W = map(int, hw.split('x'))
    x = torch.randn(1, 3, H, W, generator=gen)
    with torch.no_grad():
        results[hw] = [o.clone() for o in model(x)]
    print(hw, [tuple(o.shape) for o in results[hw]], [f'{o.abs().mean():.3g}' for o in results[hw]])
sd = model.state_dict()
if 'fp16' in sys.argv[8:]:
    sd = {k: v.half() for k, v in sd.items()}
torch.save({'model': sd, 'outputs': results, 'seed': 1, 'sizes': sizes}, out)
print('saved', out, sum(v.numel() for v in sd.values()), 'tensors elements')
