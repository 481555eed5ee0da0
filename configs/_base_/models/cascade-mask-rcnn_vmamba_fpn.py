# Cascade Mask R-CNN on a VMamba backbone: the four stage outputs feed mmdet's FPN; heads,
# assigners and test settings are mmdet's own.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=[96, 192, 384, 768]))
