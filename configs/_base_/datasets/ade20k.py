# ADE20K (ADEChallengeData2016) with mmseg's standard 512x512 recipe.
dataset_type = 'ADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (512, 512)
# after LoadAnnotations: a label map of another size, or with values that are no class, stops the
# run naming the file instead of training on it (ADE20K's 150 classes, 255 ignored)
check_labels = dict(type='CheckSegAnnotation', num_classes=150, ignore_index=255)
# before LoadImageFromFile: a truncated image, or one that the keep-ratio resize to `scale` (the
# smallest the pipeline's resize draws) makes 0 pixels wide, stops the run naming the file
train_pipeline = [
    dict(type='CheckImageFile', scale=(1024, 256)),
    dict(type='LoadImageFromFile'),
    # label 0 ("other") becomes 255 and is ignored; classes 1..150 become 0..149
    dict(type='LoadAnnotations', reduce_zero_label=True),
    check_labels,
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='CheckImageFile', scale=(2048, 512)),
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # annotations are loaded after Resize: metrics are computed at the original resolution
    dict(type='LoadAnnotations', reduce_zero_label=True),
    check_labels,
    dict(type='PackSegInputs'),
]
# tools/test.py --tta (mmseg's too): multi-scale and flipped inputs, predictions averaged by the
# runtime's tta_model
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=True)], [check_labels],
        [dict(type='PackSegInputs')]])
]
# 2 images per GPU x 8 GPUs = the usual 16 images per iteration
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    # InfiniteSampler's indices, each sample's augmentation seeded from its position in the stream:
    # a resumed run continues exactly (mmssm.datasets.seeded_sampling)
    sampler=dict(type='SeededInfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
