# UperNet + VMamba-B on ADE20K; everything else as upernet_vmamba-t_ade20k.py.
_base_ = './upernet_vmamba-t_ade20k.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.6,
        init_cfg=dict(checkpoint='checkpoints/vssm_base_0229_ckpt_epoch_237.pth')))
