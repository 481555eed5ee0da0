"""ViTDet's simple feature pyramid (Li et al. 2022) for plain backbones such as Vim.

Only the last feature map (stride 16) is used: deconvolutions, identity and max-pooling make
strides 4/8/16/32, each level gets a 1x1 and a 3x3 conv with LayerNorm, and a max-pool of the
coarsest level adds stride 64, the five levels mmdet's RPN and RoI heads expect.
"""
import torch.nn as nn
from timm.layers import LayerNorm2d

from mmssm.registry import register_model


def _conv_ln(in_channels, out_channels, kernel_size):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        LayerNorm2d(out_channels))


@register_model()
class SimpleFeaturePyramid(nn.Module):

    def __init__(self, in_channels, out_channels=256, scale_factors=(4.0, 2.0, 1.0, 0.5),
                 num_outs=5):
        super().__init__()
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs {num_outs} < {len(scale_factors)} scale factors')
        self.num_outs = num_outs
        self.levels = nn.ModuleList()
        for scale in scale_factors:
            dim = in_channels
            if scale == 4.0:
                resample = [nn.ConvTranspose2d(dim, dim // 2, 2, 2), LayerNorm2d(dim // 2),
                            nn.GELU(), nn.ConvTranspose2d(dim // 2, dim // 4, 2, 2)]
                dim //= 4
            elif scale == 2.0:
                resample = [nn.ConvTranspose2d(dim, dim // 2, 2, 2)]
                dim //= 2
            elif scale == 1.0:
                resample = []
            elif scale == 0.5:
                resample = [nn.MaxPool2d(2, 2)]
            else:
                raise ValueError(f'scale factor {scale} not supported; use 4, 2, 1 or 0.5')
            self.levels.append(nn.Sequential(*resample, _conv_ln(dim, out_channels, 1),
                                              _conv_ln(out_channels, out_channels, 3)))
        self.extra = nn.MaxPool2d(1, 2)

    def forward(self, inputs):
        x = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
        outs = [level(x) for level in self.levels]
        while len(outs) < self.num_outs:
            outs.append(self.extra(outs[-1]))
        return tuple(outs)
