# A few-minute CPU demo: a narrow VMamba + UperNet trained from scratch on the synthetic
# ADE20K-layout data (python -m mmssm.datasets.synthetic ade20k --out data/synthetic_ade20k).
# Data, pipelines and schedule are the Vim demo's; the backbone feeds UPerHead directly, as in
# upernet_vmamba-t_ade20k.py.
_base_ = './upernet_vim-demo_synthetic-ade20k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch=dict(embed_dims=16, depths=(1, 1, 2, 1)),
        out_indices=(0, 1, 2, 3)),
    neck=None,
    decode_head=dict(channels=64),
    auxiliary_head=dict(channels=32))
