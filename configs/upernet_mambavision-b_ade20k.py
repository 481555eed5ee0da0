# UperNet + MambaVision-B on ADE20K; training as for MambaVision-T. Put NVIDIA's ImageNet weights
# (mambavision_base_1k.pth.tar) under checkpoints/, or set model.backbone.init_cfg=None to start
# from scratch.
_base_ = './upernet_mambavision-t_ade20k.py'
model = dict(
    backbone=dict(
        arch='B',
        init_cfg=dict(checkpoint='checkpoints/mambavision_base_1k.pth.tar')))
