"""Blocks shared by the hierarchical families (VMamba, MambaVision)."""
import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp

from .fused import into_linear


class PreNormBlock(nn.Module):
    """x + drop_path(gamma_1 * op(norm(x), hw)), then x + drop_path(gamma_2 * mlp(norm2(x))).

    ``op`` is any mixer with the signature ``op(x, hw)`` on tokens (batch, H*W, dim); one with a
    true ``takes_norm`` attribute is called as ``op(x, hw, norm=norm)`` on the block's input. The
    MLP is left out when ``mlp_ratio`` is 0 (VMamba v0), layer scale (``gamma_1``, ``gamma_2``) is
    used when ``layer_scale`` is a number (MambaVision). Submodule names follow the VMamba release.
    """

    def __init__(self, dim, op, mlp_ratio=4., drop_path=0., norm_layer=nn.LayerNorm,
                 act_layer=nn.GELU, layer_scale=None):
        super().__init__()
        self.norm = norm_layer(dim)
        self.op = op
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = None
        if mlp_ratio > 0:
            self.norm2 = norm_layer(dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)
        self.layer_scale = layer_scale is not None
        if self.layer_scale:
            self.gamma_1 = nn.Parameter(torch.full((dim, ), float(layer_scale)))
            self.gamma_2 = nn.Parameter(torch.full((dim, ), float(layer_scale)))

    def forward(self, x, hw):
        # an op with ``takes_norm`` runs the norm inside its first projection's recomputed
        # function (``into_linear``): the norm's output is then not kept for the backward
        y = (self.op(x, hw, norm=self.norm) if getattr(self.op, 'takes_norm', False)
             else self.op(self.norm(x), hw))
        x = x + self.drop_path(self.gamma_1 * y if self.layer_scale else y)
        if self.mlp is not None:
            # fc1's input (the norm's output) and fc2's (the activation's) are recomputed in the
            # backward, not kept; timm's Mlp is built without dropout and norm here, so
            # fc1 -> act -> fc2 is all
            mlp = self.mlp
            h = into_linear(self.norm2, mlp.fc1, x, params=self.norm2.parameters())
            y = into_linear(mlp.act, mlp.fc2, h)
            x = x + self.drop_path(self.gamma_2 * y if self.layer_scale else y)
        return x
