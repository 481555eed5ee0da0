# UperNet on a Vision Mamba backbone, as in the Vim paper: the stride-16 outputs of four blocks are
# turned into strides 4/8/16/32 by deconvolutions / identity / max-pooling (mmseg's Feature2Pyramid),
# and UPerHead's channels equal the embedding width (192 for Vim-Ti). The neck's and the heads' input
# channels come from the backbone.
_base_ = './upernet.py'
# test images are padded too, to whole stride-32 cells: the pyramid max-pools the stride-16 grid,
# which needs at least 2x2 patches (a 15x17 image would have 1x2)
data_preprocessor = dict(test_cfg=dict(size_divisor=32))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='VisionMamba',
        arch='tiny',
        img_size=512,
        out_indices=(5, 11, 17, 23),
        drop_path_rate=0.1),
    neck=dict(
        type='Feature2Pyramid',
        rescales=[4, 2, 1, 0.5],
        norm_cfg=_base_.norm_cfg),
    decode_head=dict(channels=192))
