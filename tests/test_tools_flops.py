import re
import subprocess
import sys

import torch

from mmssm.models.backbones import VisionMamba, VMamba
from tools.analysis_tools.get_flops import count


def test_scan_flops_are_added_to_the_count():
    """4 blocks, each one bidirectional scan over 2 x 64 channels, 16 tokens, 4 states."""
    model = VisionMamba(arch=dict(embed_dims=32, depth=4, d_state=4), img_size=64).eval()
    image = (torch.randn(1, 3, 64, 64), )
    params, with_scan = count(model, image)
    _, without = count(model, image, with_scan=False)
    assert params == sum(p.numel() for p in model.parameters())
    assert with_scan - without == 4 * (9 * 128 * 16 * 4 + 2 * 128 * 16)


def test_get_flops_cli():
    out = subprocess.run(
        [sys.executable, 'tools/analysis_tools/get_flops.py',
         'configs/demo/upernet_vim-demo_synthetic-ade20k.py', '--shape', '64', '96'],
        capture_output=True, text=True, check=True).stdout
    assert re.search(r'at 64x96: [\d.]+M parameters, [\d.]+ GFLOPs', out), out


def test_fused_attention_flops_are_counted():
    """MambaVision's window attention: qkv and proj linears plus q k^T and attn v, 2 windows of
    16 tokens, 32 channels in 2 heads."""
    from mmssm.models.backbones.mambavision import WindowAttention
    attention = WindowAttention(32, num_heads=2, qkv_bias=True).eval()
    _, flops = count(attention, (torch.randn(2, 16, 32), ))
    assert flops == 2 * 16 * 32 * (3 * 32 + 32) + 2 * 2 * 16 * 16 * (16 + 16)


def test_cross_scan_flops_count_every_route():
    """VMamba shares one block of tokens between its four routes: the scan is counted over the
    4 x d_inner channels it runs (VMamba's 9*B*L*D*N with D = 4 * d_inner)."""
    model = VMamba(arch=dict(embed_dims=8, depths=(1, 1, 1, 1))).eval()
    image = (torch.randn(1, 3, 64, 64), )
    _, with_scan = count(model, image)
    _, without = count(model, image, with_scan=False)
    # stage i: 8 * 2**i channels (ssm_ratio 1), (16 / 2**i)**2 tokens, d_state 1
    expected = sum(9 * 4 * 8 * 2**i * (16 // 2**i)**2 + 2 * 4 * 8 * 2**i * (16 // 2**i)**2
                   for i in range(4))
    assert with_scan - without == expected


def test_shape_only_scan_keeps_the_count():
    """count() traces with a scan that only makes zeros of the right shapes; the real scan gives
    the same total, and the real scan is back afterwards."""
    from mmengine.analysis import FlopAnalyzer

    from mmssm_kernels.torch_scan import TorchScan
    from tools.analysis_tools.get_flops import attention_flops, scan_flops
    model = VMamba(arch=dict(embed_dims=8, depths=(1, 1, 1, 1))).eval()
    image = (torch.randn(1, 3, 64, 64), )
    real_forward = TorchScan.forward
    _, flops = count(model, image)
    assert TorchScan.forward is real_forward
    analyzer = FlopAnalyzer(model, image)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', attention_flops)
    analyzer.set_op_handle(f'prim::PythonOp.{TorchScan.__name__}', scan_flops)
    assert analyzer.total() == flops


def test_detector_rois_are_counted_at_max_per_img():
    """A Mask R-CNN's count grows by the box and mask heads' cost per RoI for each extra
    proposal while there are at most 100 (the mask head's share), by the box head's above."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    from tools.analysis_tools.get_flops import DetectorHeads
    cfg = Config.fromfile('configs/mask-rcnn_vmamba-t_fpn_1x_coco.py')
    cfg.model.backbone.arch = dict(embed_dims=8, depths=(1, 1, 1, 1))
    cfg.model.neck.in_channels = [8, 16, 32, 64]
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    image = (torch.randn(1, 3, 64, 96), )
    totals = []
    for rois in (10, 20, 110, 120):
        model.test_cfg.rpn.max_per_img = rois
        totals.append(count(DetectorHeads(model), image)[1])
    roi_head = model.roi_head
    box = count(roi_head.bbox_head, (torch.randn(1, 256, 7, 7), ))[1]
    mask = count(roi_head.mask_head, (torch.randn(1, 256, 14, 14), ))[1]
    assert totals[1] - totals[0] == 10 * (box + mask)
    assert totals[3] - totals[2] == 10 * box
