# UperNet on a VMamba backbone, as the VMamba paper's segmentation models (its release builds them
# on mmseg's Swin UperNet): the four stage outputs (strides 4 to 32, each after its own LayerNorm)
# go to UPerHead with 512 channels, an FCN auxiliary head reads stage 3.
_base_ = './upernet.py'
model = dict(
    backbone=dict(
        type='VMamba',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2))
