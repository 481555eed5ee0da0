# UperNet on a MambaVision backbone, as in the official MambaVision segmentation configs: the four
# stage outputs (strides 4/8/16/32, each after its own LayerNorm) feed UPerHead (512 channels) and
# stage 3 an FCN auxiliary head (256 channels).
_base_ = './upernet.py'
model = dict(
    backbone=dict(
        type='MambaVision',
        arch='T',
        window_size=(8, 8, 64, 32),
        out_indices=(0, 1, 2, 3),
        # the official dense wrapper drops its config's drop_path_rate and trains with 0.2
        drop_path_rate=0.2))
