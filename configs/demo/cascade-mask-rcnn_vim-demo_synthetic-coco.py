# A tiny Cascade Mask R-CNN on a 4-block Vim, trained from scratch on the synthetic COCO-format data
# (python -m mmssm.datasets.synthetic coco --out data/synthetic_coco). The tool tests run it for a
# few iterations; everything not set here is cascade-mask-rcnn_vim-ti_fpn_3x_coco.py.
_base_ = '../cascade-mask-rcnn_vim-ti_fpn_3x_coco.py'

data_root = 'data/synthetic_coco/'
metainfo = dict(
    classes=('disc', 'block', 'wedge'), palette=[(220, 60, 50), (50, 180, 70), (60, 90, 220)])
num_classes = len(metainfo['classes'])
image_size = (256, 256)
embed_dims = 96

# the cascade's three box heads differ only in their regression target scales; they are spelled
# out for this data set's class count (and narrower)
bbox_heads = [
    dict(
        type='Shared2FCBBoxHead',
        in_channels=256,
        fc_out_channels=256,
        roi_feat_size=7,
        num_classes=num_classes,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[s, s, 2 * s, 2 * s]),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
    for s in (0.1, 0.05, 0.033)
]
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=embed_dims, depth=4),  # replaces a named arch
        img_size=image_size[0],
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels=embed_dims),
    roi_head=dict(bbox_head=bbox_heads, mask_head=dict(num_classes=num_classes)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[9, 11],
         gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10))
randomness = dict(seed=0)
