# Cascade Mask R-CNN on a Vision Mamba backbone with ViTDet's simple feature pyramid: the last
# block's stride-16 output becomes strides 4/8/16/32 (deconvolutions / identity / max-pooling, then
# 1x1 and 3x3 convs with LayerNorm) plus a pooled stride-64 level. Heads, assigners and test
# settings are mmdet's own; SSMCascadeRCNN is mmdet's CascadeRCNN that gives the neck the
# backbone's out_channels.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'
model = dict(
    type='SSMCascadeRCNN',
    backbone=dict(
        _delete_=True,
        type='VisionMamba',
        arch='tiny',
        img_size=1024,
        out_indices=(-1, ),
        drop_path_rate=0.1),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5))
