# UperNet + VMamba-T on ADE20K: 512x512 crops, 160k iterations at 16 images each (8 GPUs x 2),
# AdamW lr 6e-5, weight decay 0.01 except on norms, as the VMamba release. Put the release's
# ImageNet weights (vssm1_tiny_0230s_ckpt_epoch_264.pth) under checkpoints/, or set
# model.backbone.init_cfg=None to start from scratch.
_base_ = [
    '_base_/models/upernet_vmamba.py', '_base_/datasets/ade20k.py', '_base_/seg_runtime.py',
    '_base_/schedules/schedule_160k.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth')))
optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.))
train_dataloader = dict(batch_size=2)
