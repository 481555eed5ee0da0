# The synthetic COCO-format data of the demo configs (python -m mmssm.datasets.synthetic coco
# --out data/synthetic_coco): three shape classes, coco_instance.py's layout and metric, images
# resized to 256x256.
_base_ = './coco_instance.py'
data_root = 'data/synthetic_coco/'
metainfo = dict(
    classes=('disc', 'block', 'wedge'), palette=[(220, 60, 50), (50, 180, 70), (60, 90, 220)])
num_classes = len(metainfo['classes'])
image_size = (256, 256)
train_pipeline = [
    dict(type='CheckImageFile', scale=image_size),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='CheckImageFile', scale=image_size),
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
