"""Parameters and FLOPs of a config's model at an input size, the selective scan included.

mmengine's jit-based counter sees the scan as one opaque autograd Function; this counts it like
mamba_ssm does: 9 FLOPs per (batch, channel, token, state), plus the D skip and z gate. It has no
count for fused attention (F.scaled_dot_product_attention) either; that is added here as two
matrix products, in mmengine's unit of one multiply-add.

    python tools/analysis_tools/get_flops.py configs/upernet_vim-s_ade20k.py --shape 512 512
    python tools/analysis_tools/get_flops.py configs/mask-rcnn_vmamba-t_fpn_1x_coco.py --shape 800 1280
"""
import argparse
import contextlib
import math

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmdet.structures.bbox import bbox2roi

import mmssm  # noqa: F401
from mmssm_kernels.torch_scan import TorchScan


def scan_flops(inputs, outputs):
    # delta carries every route's channels (u may be one block shared by the routes)
    batch, channels, length = inputs[1].type().sizes()
    A = inputs[2].type().sizes()  # (channels, N)
    return 9 * batch * channels * length * A[1] + 2 * batch * channels * length


def attention_flops(inputs, outputs):
    q, k, v = (inputs[i].type().sizes() for i in range(3))  # (..., L, d), (..., S, d), (..., S, dv)
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


@contextlib.contextmanager
def shape_only_scan():
    """The scan's FLOPs come from its input shapes alone (:func:`scan_flops`), and every other
    count from shapes too, so while tracing it returns zeros of the right shapes instead of
    stepping through every token and holding its states."""
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, routes, hw, merge,
                out_dtype, save):
        batch, channels, length = delta.shape
        out = channels // len(routes.split(',')) if merge else channels
        return (u.new_zeros(batch, out, length, dtype=out_dtype),
                u.new_zeros(batch, channels, A.shape[1], dtype=torch.float32))

    real = TorchScan.forward
    TorchScan.forward = staticmethod(forward)
    try:
        yield
    finally:
        TorchScan.forward = real


def count(module, inputs, with_scan=True):
    """(parameters, FLOPs) of ``module(*inputs)``."""
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', attention_flops)
    if with_scan:
        analyzer.set_op_handle(f'prim::PythonOp.{TorchScan.__name__}', scan_flops)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    # without autograd the trace does not keep every activation alive: with the shape-only scan
    # this took UperNet+VMamba-T at 512x2048 from about 30 GB to 3.8 GB
    with shape_only_scan(), torch.no_grad():
        flops = analyzer.total()
    return parameter_count(module)[''], flops


class DetectorHeads(torch.nn.Module):
    """A two-stage detector as its FLOPs are usually quoted (mmdet 2.x ``forward_dummy``, as in
    the Swin, VMamba and MambaVision tables): backbone, neck, RPN convolutions, every box head on
    the RPN's ``max_per_img`` proposals and every mask head on the first 100 of them.

    mmdet 3's ``mode='tensor'`` is not used: its proposals come out of NMS on random weights, so
    their number (and the RoI heads' FLOPs) is arbitrary, and its cascade head sends all of them
    through each stage's mask head, 10x the quoted mask cost.
    """

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, image):
        x = self.detector.extract_feat(image)
        # every result is returned: the trace drops what no output depends on, FLOPs included
        outputs = self.detector.rpn_head(x)
        count = self.detector.test_cfg.rpn.max_per_img
        height, width = image.shape[-2:]
        # RoIAlign has no FLOP count, so where the boxes lie changes nothing counted
        corner = torch.rand(count, 2) * image.new_tensor([width, height]) / 2
        rois = bbox2roi([torch.cat([corner, corner * 2], dim=1)] * len(image))
        head = self.detector.roi_head
        stages = [(i, ) for i in range(head.num_stages)] if hasattr(head, 'num_stages') else [()]
        for stage in stages:
            boxes = head._bbox_forward(*stage, x, rois)
            masks = head._mask_forward(*stage, x, rois[:100])
            outputs += (boxes['cls_score'], boxes['bbox_pred'], masks['mask_preds'])
        return outputs


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
    if args.backbone_only:
        module, inputs = model.backbone, (image, )
    elif hasattr(model, 'roi_head'):
        module, inputs = DetectorHeads(model), (image, )
    else:
        module, inputs = model, (image, None, 'tensor')
    params, flops = count(module, inputs)
    print(f'{args.config} at {args.shape[0]}x{args.shape[1]}'
          f'{" (backbone)" if args.backbone_only else ""}: '
          f'{params / 1e6:.2f}M parameters, {flops / 1e9:.4g} GFLOPs')


if __name__ == '__main__':
    main()
