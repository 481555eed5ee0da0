# Mask R-CNN on a VMamba backbone: the four stage outputs (strides 4 to 32, each after its own
# LayerNorm) feed mmdet's FPN, as in the VMamba release (built on mmdet's Swin Mask R-CNN).
# SSMMaskRCNN is mmdet's MaskRCNN that gives the FPN the backbone's out_channels.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'
model = dict(
    type='SSMMaskRCNN',
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2),
    neck=dict(in_channels=None))  # None: the backbone's out_channels
