# Cascade Mask R-CNN + Vim-Ti on COCO 2017, 3x schedule (36 epochs) at 16 images per iteration
# (8 GPUs x 2). Put the official ImageNet weights (vim_t_midclstok_76p1acc.pth) under
# checkpoints/, or set model.backbone.init_cfg=None to start from scratch.
_base_ = [
    '_base_/models/cascade-mask-rcnn_vim_fpn.py', '_base_/datasets/coco_instance.py',
    '_base_/det_runtime.py', '_base_/schedules/schedule_3x.py'
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vim_t_midclstok_76p1acc.pth')))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.8),
    clip_grad=dict(max_norm=1.0))
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
