# UperNet + Vim-Ti on ADE20K: 512x512 crops, 160k iterations at 16 images each (8 GPUs x 2).
# Put the official ImageNet weights (vim_t_midclstok_76p1acc.pth) under checkpoints/, or set
# model.backbone.init_cfg=None to start from scratch.
_base_ = [
    '_base_/models/upernet_vim.py', '_base_/datasets/ade20k.py', '_base_/seg_runtime.py',
    '_base_/schedules/schedule_160k.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vim_t_midclstok_76p1acc.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.92))
train_dataloader = dict(batch_size=2)
