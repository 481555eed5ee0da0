"""What the official VMamba and MambaVision blocks keep for the backward, measured as
``benchmark.py --saved-activations`` measures mmssm's: one training forward under
``saved_tensors_hooks`` (mmssm.benchmark.saved), per image from a batch and its double.

The release code runs unmodified on the CPU from a checkout given on the command line. Its CUDA
scans are replaced by stand-ins that compute with mmssm's scan and keep exactly what the CUDA
autograd functions keep, in the shapes their ``fwd`` allocates: VMamba's ``SelectiveScanCuda``
(``selective_scan_cuda_oflex``: u, delta, A, B, C, D, delta_bias and the fp32 states x
(batch, channels, ceil(L / 2048), 2N)), and mamba_ssm's ``SelectiveScanFn`` for MambaVision (the
same, after its ``.contiguous()`` copies of inputs whose last stride is not 1). Its PyTorch
cross-scan keeps nothing, as its Triton one does. Random weights; the T models' settings.

    python tools/analysis_tools/official_saved_activations.py vmamba PATH/TO/VMamba --shape 512
    python tools/analysis_tools/official_saved_activations.py mambavision PATH/TO/MambaVision \\
        --shape 512 --window-size 8 8 64 32
"""
import argparse
import contextlib
import math
import sys
import types
from pathlib import Path

import torch

from mmssm.benchmark.saved import block_activations, saved_table
from mmssm_kernels import ScanPaths, selective_scan

MAMBA_CHUNK = 2048


def _scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, out_dtype):
    """The scan's output with mmssm's PyTorch path, and the fp32 state buffer the CUDA fwd
    allocates (its contents are not needed: only its size is measured)."""
    with torch.no_grad():
        out = selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                             paths=ScanPaths(), out_dtype=out_dtype, backend='torch')
    states = u.new_empty(u.shape[0], u.shape[1], math.ceil(u.shape[2] / MAMBA_CHUNK),
                         2 * A.shape[1], dtype=torch.float32)
    return out, states


def vmamba_model(repo, window_size):
    oflex = types.ModuleType('selective_scan_cuda_oflex')

    def fwd(u, delta, A, B, C, D, delta_bias, delta_softplus, nrows, out_fp32):
        return _scan(u, delta, A, B, C, D, None, delta_bias, delta_softplus,
                     torch.float32 if out_fp32 else u.dtype)

    oflex.fwd = fwd
    sys.modules['selective_scan_cuda_oflex'] = oflex
    # the release imports fvcore/einops for FLOP counting only
    for name in ('fvcore', 'fvcore.nn', 'einops'):
        sys.modules.setdefault(name, types.ModuleType(name))
    for fn in ('FlopCountAnalysis', 'flop_count_str', 'flop_count', 'parameter_count'):
        setattr(sys.modules['fvcore.nn'], fn, None)
    sys.modules['einops'].rearrange = sys.modules['einops'].repeat = None
    # it enters torch.cuda.device(x.device) around its cross-scan, which a CPU tensor refuses
    cuda_device = torch.cuda.device
    torch.cuda.device = lambda d: (contextlib.nullcontext() if torch.device(d).type == 'cpu'
                                   else cuda_device(d))
    sys.path.insert(0, str(Path(repo) / 'classification' / 'models'))
    import vmamba as official
    # vssm1_tiny_0230s (classification/configs/vssm/vmambav2v_tiny_224.yaml)
    model = official.Backbone_VSSM(
        out_indices=(0, 1, 2, 3), dims=96, depths=[2, 2, 8, 2], ssm_d_state=1, ssm_ratio=1.0,
        ssm_dt_rank='auto', ssm_conv=3, ssm_conv_bias=False, forward_type='v05_noz',
        mlp_ratio=4.0, downsample_version='v3', patchembed_version='v2', norm_layer='ln2d',
        drop_path_rate=0.0)
    blocks = [(n, m) for n, m in model.named_modules() if type(m).__name__ == 'VSSBlock']
    return model, blocks


class _SelectiveScanFn(torch.autograd.Function):
    """mamba_ssm's SelectiveScanFn as far as what it keeps is concerned."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        u, delta, B, C = (t if t.stride(-1) == 1 else t.contiguous() for t in (u, delta, B, C))
        if z is not None and z.stride(-1) != 1:
            z = z.contiguous()
        B = B.unsqueeze(1) if B.dim() == 3 else B
        C = C.unsqueeze(1) if C.dim() == 3 else C
        out, states = _scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, u.dtype)
        saved = (u, delta, A, B, C, D, delta_bias, states)
        ctx.save_for_backward(*saved if z is None else (*saved, z, out))
        return out


def _groups(side):
    """'b (b2 l) d' -> [['b'], ['b2', 'l'], ['d']]."""
    out, group = [], None
    for token in side.replace('(', ' ( ').replace(')', ' ) ').split():
        if token == '(':
            group = []
        elif token == ')':
            out.append(group)
            group = None
        elif group is not None:
            group.append(token)
        else:
            out.append([token])
    return out


def rearrange(x, pattern, **sizes):
    """einops' rearrange for the patterns the release uses, as einops runs them (reshape,
    permute, reshape: views where torch can, copies where it cannot)."""
    left, right = (_groups(side) for side in pattern.split('->'))
    dims = dict(sizes)
    for group, size in zip(left, x.shape):
        known = math.prod(dims[n] for n in group if n in dims)
        for n in group:
            dims.setdefault(n, size // known)
    names = [n for g in left for n in g]
    order = [names.index(n) for g in right for n in g]
    x = x.reshape([dims[n] for n in names]).permute(order)
    return x.reshape([math.prod(dims[n] for n in g) for g in right])


def mambavision_model(repo, window_size):
    einops = types.ModuleType('einops')
    # repeat: only 'n -> d n' at initialisation
    einops.rearrange = rearrange
    einops.repeat = lambda x, pattern, d: x.expand(d, *x.shape)
    sys.modules.setdefault('einops', einops)
    def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False, return_last_state=False):
        return _SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

    from tools.analysis_tools.mambavision_official_outputs import official_module
    official = official_module(repo, selective_scan_fn)
    model = official.MM_mamba_vision(dim=80, in_dim=32, depths=(1, 3, 8, 4),
                                     num_heads=(2, 4, 8, 16), window_size=tuple(window_size),
                                     mlp_ratio=4, layer_scale=None)
    blocks = [(n, m) for n, m in model.named_modules()
              if type(m).__name__ in ('ConvBlock', 'Block')]
    return model, blocks


MODELS = {'vmamba': vmamba_model, 'mambavision': mambavision_model}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('family', choices=sorted(MODELS))
    parser.add_argument('repo', help='a checkout of MzeroMiko/VMamba or NVlabs/MambaVision')
    parser.add_argument('--shape', type=int, nargs='+', default=[512])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--amp', choices=['bf16', 'fp32'], default='bf16')
    parser.add_argument('--window-size', type=int, nargs=4, default=(8, 8, 64, 32),
                        help="MambaVision's windows (default: the segmentation configs')")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model, blocks = MODELS[args.family](args.repo, args.window_size)
    dtype = torch.bfloat16 if args.amp == 'bf16' else None
    saved = {}
    for side in args.shape:
        x = torch.randn(max(args.batch, 2), 3, side, side)
        saved[f'{side}x{side}'] = block_activations(model, x, dtype, blocks)
    print(f'official {args.family} ({args.amp}, CPU, CUDA scan stand-in)')
    print(saved_table(saved))


if __name__ == '__main__':
    main()
