# A few-minute CPU demo: a 4-block Vim + UperNet trained from scratch on the synthetic ADE20K-layout
# data (python -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k; tools/demo.sh makes
# it). The model and optimizer are upernet_vim-ti_ade20k.py's, narrower and at a higher rate.
_base_ = [
    '../_base_/models/upernet_vim.py', '../_base_/datasets/synthetic_ade20k.py',
    '../_base_/seg_runtime.py', '../_base_/schedules/schedule_250it.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=96, depth=4),  # replaces a named arch
        img_size=_base_.crop_size[0],
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        init_cfg=None),
    decode_head=dict(channels=96),
    auxiliary_head=dict(channels=64))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.92))
