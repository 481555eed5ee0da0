# A tiny Cascade Mask R-CNN on a narrow MambaVision, trained from scratch on the synthetic
# COCO-format data (python -m mmssm.datasets.synthetic coco --out data/synthetic_coco). The tool
# tests run it for a few iterations; everything not set here is
# cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py.
_base_ = '../cascade-mask-rcnn_mambavision-t_fpn_3x_coco.py'

data_root = 'data/synthetic_coco/'
metainfo = dict(
    classes=('disc', 'block', 'wedge'), palette=[(220, 60, 50), (50, 180, 70), (60, 90, 220)])
num_classes = len(metainfo['classes'])
image_size = (256, 256)

# a list in a config replaces its base's whole: the three heads are spelled out, narrower
bbox_heads = [
    dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=64,
        conv_out_channels=64,
        fc_out_channels=128,
        roi_feat_size=7,
        num_classes=num_classes,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
    for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
]
model = dict(
    backbone=dict(
        # replaces a named arch
        arch=dict(_delete_=True, embed_dims=16, stem_channels=8, depths=(1, 1, 2, 2),
                  num_heads=(1, 2, 4, 8)),
        window_size=(8, 8, 14, 7),
        mask_padding=True,
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=bbox_heads,
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64, num_classes=num_classes)))

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
# mixed precision needs a GPU
optim_wrapper = dict(type='OptimWrapper')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[9, 11],
         gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10))
randomness = dict(seed=0)
