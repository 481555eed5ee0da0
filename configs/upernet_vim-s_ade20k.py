# UperNet + Vim-S on ADE20K, UPerHead as wide as the backbone; everything else as
# upernet_vim-ti_ade20k.py.
_base_ = './upernet_vim-ti_ade20k.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    decode_head=dict(channels=384))
