# UperNet + MambaVision-S on ADE20K; training as for MambaVision-T, with the official windows and
# learning rate of the S config. Put NVIDIA's ImageNet weights (mambavision_small_1k.pth.tar) under
# checkpoints/, or set model.backbone.init_cfg=None to start from scratch.
_base_ = './upernet_mambavision-t_ade20k.py'
model = dict(
    backbone=dict(
        arch='S',
        window_size=(8, 8, 160, 56),
        init_cfg=dict(checkpoint='checkpoints/mambavision_small_1k.pth.tar')))
optim_wrapper = dict(optimizer=dict(lr=6e-5))
