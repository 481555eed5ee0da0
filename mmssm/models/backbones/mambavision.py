"""MambaVision (Hatamizadeh & Kautz, CVPR 2025) as a dense-prediction backbone.

A conv stem, two stages of residual conv blocks, then two hybrid stages whose blocks run inside
windows: the first half of each stage's blocks mixes tokens with the MambaVision mixer (one forward
scan over each window's row-major tokens, through the shared ``selective_scan``), the second half
with self-attention. Each stage's output, before its downsampling, goes through its own LayerNorm
to the neck, at strides 4/8/16/32, as in the official dense wrapper. Parameter names follow the
official release where the layers are the same; ``checkpoint_filter`` maps the rest.
"""

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d
from timm.layers.attention import Attention

from mmssm.checkpoints import backbone_weights
from mmssm.registry import register_model
from mmssm_kernels import ScanPaths
from ..layers import PreNormBlock, SelectiveSSM
from ..layers.fused import into_linear
from .base import HierarchicalBackbone
from .mambavision_windows import window_layout

ARCH_SETTINGS = {
    'T': dict(embed_dims=80, stem_channels=32, depths=(1, 3, 8, 4), num_heads=(2, 4, 8, 16),
              layer_scale=None),
    'T2': dict(embed_dims=80, stem_channels=32, depths=(1, 3, 11, 4), num_heads=(2, 4, 8, 16),
               layer_scale=None),
    'S': dict(embed_dims=96, stem_channels=64, depths=(3, 3, 7, 5), num_heads=(2, 4, 8, 16),
              layer_scale=None),
    'B': dict(embed_dims=128, stem_channels=64, depths=(3, 3, 10, 5), num_heads=(2, 4, 8, 16),
              layer_scale=1e-5),
    'L': dict(embed_dims=196, stem_channels=64, depths=(3, 3, 10, 5), num_heads=(4, 8, 16, 32),
              layer_scale=1e-5),
    'L2': dict(embed_dims=196, stem_channels=64, depths=(3, 3, 12, 5), num_heads=(4, 8, 16, 32),
               layer_scale=1e-5),
}
FORWARD = ScanPaths.forward()


class Stem(nn.Module):
    """Two 3x3 stride-2 convs, each with BatchNorm (eps 1e-4) and ReLU: stride 4."""

    def __init__(self, in_channels, mid_channels, dim):
        super().__init__()
        self.conv_down = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(mid_channels, eps=1e-4), nn.ReLU(),
            nn.Conv2d(mid_channels, dim, 3, 2, 1, bias=False),
            nn.BatchNorm2d(dim, eps=1e-4), nn.ReLU())

    def forward(self, x):
        return self.conv_down(x)


class ConvBlock(nn.Module):
    """Two 3x3 convs with BatchNorm around a tanh-GELU, added to the input."""

    def __init__(self, dim, drop_path=0.):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(dim)
        self.act1 = nn.GELU(approximate='tanh')
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        y = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return x + self.drop_path(y)


class MambaVisionMixer(SelectiveSSM):
    """in_proj splits the tokens into two halves; each goes through a non-causal depthwise conv1d
    (width 3, no bias) and SiLU; the first half is then scanned forward over the window's tokens
    (d_state 8, expand 1) and the two halves are concatenated before out_proj: the second half is
    a parallel branch, not a gate.

    ``double_dt_bias``: the official mixer adds dt_proj's bias in dt_proj and again as the scan's
    delta_bias; the released weights were trained that way, so it is on by default.
    """

    def __init__(self, dim, d_state=8, d_conv=3, dt_rank='auto', double_dt_bias=True):
        if dim % 2 or d_conv % 2 == 0:
            raise ValueError(f'MambaVisionMixer needs an even dim and an odd d_conv, got dim '
                             f'{dim}, d_conv {d_conv}')
        half = dim // 2
        super().__init__(half, d_state, dt_rank, num_routes=1, d_model=dim)
        self.double_dt_bias = double_dt_bias
        self.in_proj = nn.Linear(dim, dim, bias=False)
        self.conv1d_x, self.conv1d_z = (
            nn.Conv1d(half, half, d_conv, padding=d_conv // 2, groups=half, bias=False)
            for _ in range(2))
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def front(self, u):
        return F.silu(self.conv1d_x(u), inplace=True)

    def project(self, u):
        delta, B, C = super().project(u)
        if self.double_dt_bias:
            delta = delta + self.dt_projs_bias.flatten()[:, None].to(delta.dtype)
        return delta, B, C

    takes_norm = True

    def forward(self, x, valid=None, norm=None):
        """x: (windows, L, dim); valid: (windows, L), False at padding (placed last), or None;
        ``norm``: applied to x first, recomputed in in_proj's backward (its output not kept)."""
        xz = (self.in_proj(x) if norm is None else
              into_linear(norm, self.in_proj, x, params=norm.parameters())).transpose(1, 2)
        if valid is not None:
            # padding ends each window's sequence: the convs must see zeros there, as at an end
            xz = xz * valid[:, None, :].to(xz.dtype)
        u, z = xz.chunk(2, dim=1)
        y = self.mix(u, FORWARD)
        # out_proj's input is recomputed from y and z in the backward, not kept
        return into_linear(self._branches, self.out_proj, y, z, params=self.conv1d_z.parameters())

    def _branches(self, y, z):
        return torch.cat((y, F.silu(self.conv1d_z(z))), dim=1).transpose(1, 2)


class WindowAttention(Attention):
    """timm's attention (fused scaled_dot_product_attention) with padding left out as keys."""

    takes_norm = True

    def forward(self, x, valid=None, norm=None):
        """``norm``: applied to x first, recomputed in qkv's backward (its output not kept)."""
        mask = None
        if valid is not None:
            # additive, which timm's fused and unfused paths both take; every window has at
            # least one image token, so no row is all -inf
            mask = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(~valid, float('-inf'))[:, None, None, :]
        if not self.fused_attn or self.gate is not None:
            return super().forward(x if norm is None else norm(x), attn_mask=mask)
        # timm's forward, with qkv's input (the norm's output) and proj's (the heads merged
        # back to channels, a copy of the attention output that SDPA keeps anyway) recomputed
        # in the backward instead of kept
        B, N, _ = x.shape
        qkv = (self.qkv(x) if norm is None else
               into_linear(norm, self.qkv, x, params=norm.parameters()))
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.attn_drop.p if self.training else 0.)
        return self.proj_drop(into_linear(self._merge_heads, self.proj, o,
                                          params=self.norm.parameters()))

    def _merge_heads(self, o):
        return self.norm(o.transpose(1, 2).flatten(2))


class ConvStage(nn.Module):

    def __init__(self, dim, depth, drop_path, downsample):
        super().__init__()
        self.blocks = nn.ModuleList(ConvBlock(dim, drop_path[i]) for i in range(depth))
        self.downsample = Downsample(dim) if downsample else None

    def forward(self, x, run_block):
        for block in self.blocks:
            x = run_block(block, x)
        return x


class WindowStage(nn.Module):
    """The official rule: the first ceil(depth / 2) blocks use the MambaVision mixer, the rest
    attention; all run inside windows of ``window_size``."""

    def __init__(self, dim, depth, num_heads, window_size, drop_path, downsample, mlp_ratio,
                 layer_scale, qkv_bias, double_dt_bias, mask_padding):
        super().__init__()
        self.window_size = window_size
        self.mask_padding = mask_padding
        num_mamba = (depth + 1) // 2

        def mixer(i):
            if i < num_mamba:
                return MambaVisionMixer(dim, double_dt_bias=double_dt_bias)
            return WindowAttention(dim, num_heads, qkv_bias=qkv_bias)

        # the blocks' second argument, which is (H, W) for grid mixers, is the windows' token
        # mask here
        self.blocks = nn.ModuleList(
            PreNormBlock(dim, mixer(i), mlp_ratio, drop_path[i], layer_scale=layer_scale)
            for i in range(depth))
        self.downsample = Downsample(dim) if downsample else None

    def forward(self, x, run_block):
        layout = window_layout(x.shape[-2:], self.window_size, self.mask_padding, x.device)
        valid = layout.token_mask(x.shape[0])
        windows = layout.partition(x)
        for block in self.blocks:
            windows = run_block(block, windows, valid)
        return layout.reverse(windows, x.shape[0])


class Downsample(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Sequential(nn.Conv2d(dim, 2 * dim, 3, 2, 1, bias=False))

    def forward(self, x):
        return self.reduction(x)



@register_model()
class MambaVision(HierarchicalBackbone):
    """MambaVision backbone.

    Args:
        arch: 'T', 'T2', 'S', 'B', 'L', 'L2', or a dict with any of embed_dims, stem_channels,
            depths, num_heads, layer_scale (the rest as in 'T').
        window_size: window side of each stage (the conv stages ignore theirs). The official
            classification models use (8, 8, 14, 7), the segmentation ones (8, 8, 64, 32) or
            (8, 8, 160, 56) and the detection ones (8, 8, 112, 56).
        mask_padding: False runs the padded windows as the official code does (the released
            weights give the official numbers); True leaves padding out of scans and attention.
        double_dt_bias: add dt_proj's bias twice, as the official mixer does.
        out_indices: stages whose outputs (before downsampling, after a per-stage LayerNorm) are
            returned, at strides 4, 8, 16, 32.
        drop_path_rate: stochastic depth, rising linearly over all blocks.
        frozen_stages: -1 trains everything; k >= 0 freezes the stem and stages 0..k-1.
        with_cp: gradient checkpointing of each block.
        scan_backend: the selective scan's backend: 'auto' (Triton for CUDA tensors), 'triton' or
            'torch'; None takes the global default, MMSSM_SCAN_BACKEND ('auto' when unset).
        init_cfg: dict(type='Pretrained', checkpoint=PATH) loads an official checkpoint.
    """

    arch_zoo = ARCH_SETTINGS
    arch_aliases = {'tiny': 'T', 'tiny2': 'T2', 'small': 'S', 'base': 'B', 'large': 'L',
                    'large2': 'L2'}
    custom_arch_base = 'T'
    stages_name = 'levels'

    def __init__(self, arch='T', window_size=(8, 8, 14, 7), in_channels=3, out_indices=(0, 1, 2, 3),
                 mlp_ratio=4., qkv_bias=True, drop_path_rate=0.,
                 mask_padding=False, double_dt_bias=True, frozen_stages=-1, with_cp=False,
                 scan_backend=None, init_cfg=None):
        super().__init__(frozen_stages=frozen_stages, with_cp=with_cp, scan_backend=scan_backend,
                         init_cfg=init_cfg)
        self.arch = self.resolve_arch(arch)
        depths, num_heads = tuple(self.arch['depths']), tuple(self.arch['num_heads'])
        self.check_settings(4, drop_path_rate, embed_dims=self.arch['embed_dims'],
                            window_size=window_size)
        window_size = tuple(window_size) if isinstance(window_size, (list, tuple)) else (
            window_size, )
        if not len(depths) == len(num_heads) == len(window_size) == 4:
            raise ValueError(f'MambaVision has 4 stages: depths {depths}, num_heads {num_heads} '
                             f'and window_size {window_size} need 4 values each')
        self.depths, self.window_size, self.in_channels = depths, window_size, in_channels
        self.dims = [self.arch['embed_dims'] * 2**i for i in range(4)]
        self.select_outputs(out_indices, self.stage_points())
        self.patch_embed = Stem(in_channels, self.arch['stem_channels'], self.dims[0])
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.levels = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(self.dims, depths)):
            rates = dpr[sum(depths[:i]):sum(depths[:i + 1])]
            if i < 2:
                level = ConvStage(dim, depth, rates, downsample=True)
            else:
                level = WindowStage(dim, depth, num_heads[i], window_size[i], rates, i < 3,
                                    mlp_ratio, self.arch['layer_scale'], qkv_bias,
                                    double_dt_bias, mask_padding)
            self.levels.append(level)
        self.add_out_norms(partial(LayerNorm2d, eps=1e-5))
        self._share_scan_backend()

    def forward(self, x):
        self.check_images(x)
        x = self.patch_embed(x)
        outs = []
        for i, level in enumerate(self.levels):
            x = level(x, self.run_block)
            if i in self.out_indices:
                outs.append(self.out_norm(i)(x).contiguous())
            if i == self.out_indices[-1]:
                break
            x = level.downsample(x)
        return tuple(outs)

    def checkpoint_filter(self, state_dict):
        return convert_official(state_dict)


# ---- NVIDIA's release (``{'state_dict': ...}``, maybe ``module.``-prefixed) and the official
# mmseg/mmdet models (``backbone.``-prefixed) -> mmssm's keys. They differ from ours in the hybrid
# blocks' names (norm1 and mixer for the shared block's norm and op) and the mixer's SSM parameters
# (stored per layer, not stacked per route), and carry a classifier (``norm``, ``head``) that dense
# prediction does not use.
# (release name, ours, whether ours stacks the one route on a leading axis)
SSM_RENAMED = (('x_proj.weight', 'x_proj_weight', True),
               ('dt_proj.weight', 'dt_projs_weight', True),
               ('dt_proj.bias', 'dt_projs_bias', True),
               ('A_log', 'A_logs', False),
               ('D', 'Ds', False))
CLASSIFIER = ('norm.', 'head.')


def convert_official(state_dict):
    """An official MambaVision state dict -> mmssm's keys. Keys already in mmssm's layout pass
    through, so converted files and mmssm's own dense checkpoints load the same way."""
    out = {}
    for key, value in backbone_weights(state_dict, CLASSIFIER).items():
        parts = key.split('.')
        # levels.<stage>.blocks.<i>.<name>...: the hybrid stages' blocks are the shared block
        if parts[0] == 'levels' and int(parts[1]) >= 2 and parts[2] == 'blocks':
            parts[4] = {'mixer': 'op', 'norm1': 'norm'}.get(parts[4], parts[4])
            tail = '.'.join(parts[5:])
            for old, new, per_route in SSM_RENAMED:
                if parts[4] == 'op' and tail == old:
                    parts[5:] = [new]
                    value = value.unsqueeze(0) if per_route else value
        out['.'.join(parts)] = value
    return out
