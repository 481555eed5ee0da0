# The synthetic ADE20K-layout data of the demo configs (python -m mmssm.datasets.synthetic ade20k
# --out data/synthetic_ade20k; tools/demo.sh makes it): ade20k.py's classes, layout and metric at
# 128x128 crops.
_base_ = './ade20k.py'
data_root = 'data/synthetic_ade20k'
crop_size = (128, 128)
# colour is what tells the synthetic classes apart, so no PhotoMetricDistortion
train_pipeline = [
    dict(type='CheckImageFile', scale=crop_size),
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    _base_.check_labels,
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='CheckImageFile', scale=crop_size),
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    _base_.check_labels,
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
