# A tiny UperNet-MambaVision trained from scratch on the synthetic ADE20K-layout data
# (python -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k). The tool tests run it for
# a few iterations. The model and optimizer are upernet_mambavision-t_ade20k.py's, narrower and at
# a higher rate, in full precision (mixed precision needs a GPU).
_base_ = [
    '../_base_/models/upernet_mambavision.py', '../_base_/datasets/synthetic_ade20k.py',
    '../_base_/seg_runtime.py', '../_base_/schedules/schedule_250it.py'
]
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(
        # replaces a named arch
        arch=dict(_delete_=True, embed_dims=16, stem_channels=8, depths=(1, 1, 2, 2),
                  num_heads=(1, 2, 4, 8)),
        window_size=(8, 8, 8, 4),
        drop_path_rate=0.0,
        init_cfg=None),
    decode_head=dict(channels=64),
    auxiliary_head=dict(channels=32))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
