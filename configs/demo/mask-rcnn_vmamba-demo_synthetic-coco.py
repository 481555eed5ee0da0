# A tiny Mask R-CNN on a narrow VMamba, trained from scratch on the synthetic COCO-format data
# (python -m mmssm.datasets.synthetic coco --out data/synthetic_coco). The tool tests run it for a
# few iterations; data and pipelines are the Vim detection demo's, the model
# mask-rcnn_vmamba-t_fpn_1x_coco.py's.
_base_ = '../mask-rcnn_vmamba-t_fpn_1x_coco.py'

data_root = 'data/synthetic_coco/'
metainfo = dict(
    classes=('disc', 'block', 'wedge'), palette=[(220, 60, 50), (50, 180, 70), (60, 90, 220)])
image_size = (256, 256)
dims = [16, 32, 64, 128]
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=dims[0], depths=(1, 1, 2, 1)), init_cfg=None),
    neck=dict(in_channels=dims, out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128, num_classes=len(metainfo['classes'])),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(in_channels=64, conv_out_channels=64,
                       num_classes=len(metainfo['classes']))))

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
default_hooks = dict(logger=dict(interval=10))
randomness = dict(seed=0)
