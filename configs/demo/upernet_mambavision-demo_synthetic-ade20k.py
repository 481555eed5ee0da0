# A tiny UperNet-MambaVision trained from scratch on the synthetic ADE20K-layout data
# (python -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k). The tool tests run it for
# a few iterations; everything not set here is upernet_mambavision-t_ade20k.py.
_base_ = '../upernet_mambavision-t_ade20k.py'

data_root = 'data/synthetic_ade20k'
crop_size = (128, 128)
max_iters = 250
dims = [16, 32, 64, 128]

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        # replaces a named arch
        arch=dict(_delete_=True, embed_dims=dims[0], stem_channels=8, depths=(1, 1, 2, 2),
                  num_heads=(1, 2, 4, 8)),
        window_size=(8, 8, 8, 4),
        drop_path_rate=0.0,
        init_cfg=None),
    decode_head=dict(in_channels=dims, channels=64),
    auxiliary_head=dict(in_channels=dims[2], channels=32))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# mixed precision needs a GPU
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=25),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=25, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_iters))
randomness = dict(seed=0)
