# Cascade Mask R-CNN + MambaVision-T on COCO 2017 as in the official config: 36 epochs at 16 images
# per iteration (8 GPUs x 2), DETR's multi-scale training with random crops, AdamW (weight decay
# 0.05, none on norms) in mixed precision after a 1000-iteration warm-up. Put NVIDIA's ImageNet
# weights (mambavision_tiny_1k.pth.tar) under checkpoints/, or set model.backbone.init_cfg=None to
# start from scratch.
_base_ = [
    '_base_/models/cascade-mask-rcnn_mambavision_fpn.py', '_base_/datasets/coco_instance.py',
    '_base_/det_runtime.py', '_base_/schedules/schedule_3x.py'
]
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mambavision_tiny_1k.pth.tar')))

multi_scale = [(s, 1333) for s in range(480, 801, 32)]
train_pipeline = [
    # the smallest scale the resizes below draw
    dict(type='CheckImageFile', scale=(400, 1333)),
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
