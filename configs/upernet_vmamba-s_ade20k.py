# UperNet + VMamba-S on ADE20K; everything else as upernet_vmamba-t_ade20k.py.
_base_ = './upernet_vmamba-t_ade20k.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/vssm_small_0229_ckpt_epoch_222.pth')))
