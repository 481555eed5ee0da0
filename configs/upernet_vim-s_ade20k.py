# UperNet + Vim-S on ADE20K; everything else as upernet_vim-ti_ade20k.py.
_base_ = './upernet_vim-ti_ade20k.py'
embed_dims = 384
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    neck=dict(embed_dim=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=embed_dims),
    auxiliary_head=dict(in_channels=embed_dims))
