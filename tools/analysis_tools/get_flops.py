"""Parameters and FLOPs of a config's model at an input size, the selective scan included.

mmengine's jit-based counter sees the scan as one opaque autograd Function; this counts it like
mamba_ssm does: 9 FLOPs per (batch, channel, token, state), plus the D skip and z gate. It has no
count for fused attention (F.scaled_dot_product_attention) either; that is added here as two
matrix products, in mmengine's unit of one multiply-add.

    python tools/analysis_tools/get_flops.py configs/upernet_vim-s_ade20k.py --shape 512 512
"""
import argparse
import math

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmssm  # noqa: F401
from mmssm_kernels.reference import TorchScan


def scan_flops(inputs, outputs):
    # delta carries every route's channels (u may be one block shared by the routes)
    batch, channels, length = inputs[1].type().sizes()
    A = inputs[2].type().sizes()  # (channels, N)
    return 9 * batch * channels * length * A[1] + 2 * batch * channels * length


def attention_flops(inputs, outputs):
    q, k, v = (inputs[i].type().sizes() for i in range(3))  # (..., L, d), (..., S, d), (..., S, dv)
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def count(module, inputs, with_scan=True):
    """(parameters, FLOPs) of ``module(*inputs)``."""
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', attention_flops)
    if with_scan:
        analyzer.set_op_handle(f'prim::PythonOp.{TorchScan.__name__}', scan_flops)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return parameter_count(module)[''], analyzer.total()


def main():
    parser = argparse.ArgumentParser(description='Count parameters and FLOPs')
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--backbone-only', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.default_scope)
    from mmengine.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    # the jit trace runs on the CPU, so the scan takes its PyTorch path
    torch.manual_seed(0)
    image = torch.randn(1, 3, *args.shape)
    module = model.backbone if args.backbone_only else model
    inputs = (image, ) if args.backbone_only else (image, None, 'tensor')
    params, flops = count(module, inputs)
    print(f'{args.config} at {args.shape[0]}x{args.shape[1]}'
          f'{" (backbone)" if args.backbone_only else ""}: '
          f'{params / 1e6:.2f}M parameters, {flops / 1e9:.4g} GFLOPs')


if __name__ == '__main__':
    main()
