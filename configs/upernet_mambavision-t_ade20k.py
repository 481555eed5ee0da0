# UperNet + MambaVision-T on ADE20K as in the official config: 512x512 crops, 160k iterations at 16
# images each (8 GPUs x 2), AdamW without weight decay on norms, mixed precision. Put NVIDIA's
# ImageNet weights (mambavision_tiny_1k.pth.tar) under checkpoints/, or set
# model.backbone.init_cfg=None to start from scratch.
_base_ = [
    '_base_/models/upernet_mambavision.py', '_base_/datasets/ade20k.py', '_base_/seg_runtime.py',
    '_base_/schedules/schedule_160k.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mambavision_tiny_1k.pth.tar')))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
train_dataloader = dict(batch_size=2)
