# Cascade Mask R-CNN + MambaVision-B on COCO 2017; training as for MambaVision-T but at twice the
# learning rate, as in the official config. Put NVIDIA's ImageNet weights
# (mambavision_base_1k.pth.tar) under checkpoints/, or set model.backbone.init_cfg=None to start
# from scratch.
_base_ = './cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py'
model = dict(
    backbone=dict(
        arch='B',
        init_cfg=dict(checkpoint='checkpoints/mambavision_base_1k.pth.tar')))
optim_wrapper = dict(optimizer=dict(lr=2e-4))
