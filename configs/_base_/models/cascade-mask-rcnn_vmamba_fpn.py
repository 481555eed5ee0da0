# Cascade Mask R-CNN on a VMamba backbone: the four stage outputs feed mmdet's FPN; heads,
# assigners and test settings are mmdet's own; SSMCascadeRCNN is mmdet's CascadeRCNN that gives the
# FPN the backbone's out_channels.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'
model = dict(
    type='SSMCascadeRCNN',
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=None))  # None: the backbone's out_channels
