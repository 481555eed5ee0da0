# Cascade Mask R-CNN on a Vision Mamba backbone with a simple feature pyramid (ViTDet-style): the
# stride-16 outputs of four blocks become strides 4/8/16/32 through deconvolutions / identity /
# max-pooling (mmseg's Feature2Pyramid), then an FPN adds the 3x3 output convs and a stride-64
# level. Heads, assigners and test settings are mmdet's own.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'
embed_dims = 192
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionMamba',
        arch='tiny',
        img_size=1024,
        out_indices=(5, 11, 17, 23),
        drop_path_rate=0.1),
    neck=[
        dict(
            type='mmseg.Feature2Pyramid',
            embed_dim=embed_dims,
            rescales=[4, 2, 1, 0.5],
            norm_cfg=norm_cfg),
        dict(
            type='FPN',
            in_channels=[embed_dims] * 4,
            out_channels=256,
            norm_cfg=norm_cfg,
            num_outs=5),
    ])
