# Cascade Mask R-CNN + MambaVision-S on COCO 2017; training as for MambaVision-T. Put NVIDIA's
# ImageNet weights (mambavision_small_1k.pth.tar) under checkpoints/, or set
# model.backbone.init_cfg=None to start from scratch.
_base_ = './cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py'
model = dict(
    backbone=dict(
        arch='S',
        init_cfg=dict(checkpoint='checkpoints/mambavision_small_1k.pth.tar')))
