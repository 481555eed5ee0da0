"""VMamba (Liu et al. 2024) as a dense-prediction backbone.

A four-stage hierarchy (strides 4 to 32) of pre-norm blocks whose mixer, SS2D, scans the H x W
grid along four routes: rows, columns, and both reversed. The routes are the scan paths
``ScanPaths.cross2d((H, W))`` of one ``selective_scan`` call that also sums them, so no flipped or
transposed copy of the tokens is made. Parameters keep the release's names and stacked layout
(``op.x_proj_weight``, ``op.dt_projs_weight``, ``op.A_logs``, ...), and like the release's dense
wrapper each returned stage goes through its own LayerNorm (``outnorm{i}``). The network runs
channel-last, as the release's 'ln' models do; their module indices (``patch_embed.0``,
``downsample.1``) are kept so that release checkpoints load key for key.
"""
import math
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssm.checkpoints import backbone_weights
from mmssm.registry import register_model
from mmssm_kernels import ScanPaths
from ..layers import PreNormBlock, SelectiveSSM
from ..layers.fused import into_linear
from .base import HierarchicalBackbone


class Permute(nn.Module):

    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class SS2D(SelectiveSSM):
    """VMamba's 2-D selective scan mixer on tokens (batch, H*W, dim).

    in_proj -> depthwise 3x3 conv -> SiLU -> scan over the four routes (summed, fp32 out) ->
    out_norm -> [times SiLU(z) with ``gate`` (v0)] -> out_proj.
    """

    def __init__(self, dim, d_state=1, ssm_ratio=1.0, dt_rank='auto', conv_bias=False, gate=False):
        d_inner = int(ssm_ratio * dim)
        super().__init__(d_inner, d_state, dt_rank, num_routes=4, d_model=dim)
        self.gate = gate
        self.in_proj = nn.Linear(dim, d_inner * (2 if gate else 1), bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, 3, padding=1, groups=d_inner, bias=conv_bias)
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)

    def front(self, u, hw):
        """(batch, L, d) -> depthwise conv over the H x W grid, SiLU -> (batch, d, L)."""
        return F.silu(self.conv2d(u.transpose(1, 2).unflatten(2, hw)), inplace=True).flatten(2)

    def forward(self, x, hw):
        xz = self.in_proj(x)
        u, z = xz.chunk(2, dim=-1) if self.gate else (xz, None)
        # summed in fp32 whatever the input precision, as the release's "fp16 in, fp32 out" scan
        y = self.mix(u, ScanPaths.cross2d(hw), out_dtype=torch.float32, front_args=(tuple(hw), ))
        # out_proj's input is recomputed from y (and z) in the backward, not kept
        return into_linear(partial(self._out, dtype=x.dtype), self.out_proj, y,
                           *((z, ) if self.gate else ()), params=self.out_norm.parameters())

    def _out(self, y, z=None, dtype=None):
        y = self.out_norm(y.transpose(1, 2))
        if z is not None:
            y = y * F.silu(z)
        return y.to(dtype)


class PatchMerging2D(nn.Module):
    """v0 downsampling (channel-last): 2x2 neighbours concatenated -> LayerNorm -> linear to 2C.
    Odd sizes are padded at the bottom and right, as the release does."""

    def __init__(self, dim, out_dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x):
        H, W = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat((x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]), -1)
        return self.reduction(self.norm(x))


def conv_stem(in_channels, dim):
    """(3x3 s2 -> LN -> GELU -> 3x3 s2 -> LN), the release's patch embedding v2."""
    return nn.Sequential(
        nn.Conv2d(in_channels, dim // 2, 3, 2, 1), Permute(0, 2, 3, 1), nn.LayerNorm(dim // 2),
        Permute(0, 3, 1, 2), nn.GELU(), nn.Conv2d(dim // 2, dim, 3, 2, 1), Permute(0, 2, 3, 1),
        nn.LayerNorm(dim))


def patch_stem(in_channels, dim):
    """4x4 patches -> LN, the release's patch embedding v1 (v0 models)."""
    return nn.Sequential(nn.Conv2d(in_channels, dim, 4, 4), Permute(0, 2, 3, 1), nn.LayerNorm(dim))


def conv_downsample(dim, out_dim):
    """3x3 stride-2 conv -> LN, the release's downsampling v3."""
    return nn.Sequential(Permute(0, 3, 1, 2), nn.Conv2d(dim, out_dim, 3, 2, 1), Permute(0, 2, 3, 1),
                         nn.LayerNorm(out_dim))


STEMS = {'conv': conv_stem, 'patch': patch_stem}
DOWNSAMPLES = {'conv': conv_downsample, 'patch_merging': PatchMerging2D}
V2 = dict(d_state=1, dt_rank='auto', conv_bias=False, gate=False, mlp_ratio=4.0, stem='conv',
          downsample='conv')
V0 = dict(d_state=16, dt_rank='auto', conv_bias=True, gate=True, mlp_ratio=0.0, stem='patch',
          downsample='patch_merging', ssm_ratio=2.0)


@register_model()
class VMamba(HierarchicalBackbone):
    """VMamba backbone.

    Args:
        arch: 'tiny', 'small', 'base' (the release's final models of the dense tables: T s1l8,
            S and B s2l15), 'vanilla-tiny', 'vanilla-small', 'vanilla-base' (the first version),
            or a dict overriding any of tiny's settings: embed_dims, depths, ssm_ratio, d_state,
            dt_rank, conv_bias, gate, mlp_ratio, stem ('conv' | 'patch'), downsample
            ('conv' | 'patch_merging').
        in_channels: image channels.
        out_indices: stages whose outputs are returned, each before its downsampling and after
            its own LayerNorm; strides 4, 8, 16, 32.
        drop_path_rate: stochastic depth, rising linearly over all blocks.
        frozen_stages: -1 trains everything; 0 freezes the stem; k >= 1 also stages 0..k-1
            (and their output norms).
        with_cp: gradient checkpointing of each block.
        scan_backend: the selective scan's backend: 'auto' (Triton for CUDA tensors), 'triton' or
            'torch'; None takes the global default, MMSSM_SCAN_BACKEND ('auto' when unset).
        init_cfg: dict(type='Pretrained', checkpoint=PATH) loads a release checkpoint as it is.
    """

    arch_zoo = {
        'tiny': dict(embed_dims=96, depths=(2, 2, 8, 2), ssm_ratio=1.0, **V2),
        'small': dict(embed_dims=96, depths=(2, 2, 15, 2), ssm_ratio=2.0, **V2),
        'base': dict(embed_dims=128, depths=(2, 2, 15, 2), ssm_ratio=2.0, **V2),
        'vanilla-tiny': dict(embed_dims=96, depths=(2, 2, 9, 2), **V0),
        'vanilla-small': dict(embed_dims=96, depths=(2, 2, 27, 2), **V0),
        'vanilla-base': dict(embed_dims=128, depths=(2, 2, 27, 2), **V0),
    }
    arch_aliases = {'t': 'tiny', 's': 'small', 'b': 'base'}
    custom_arch_base = 'tiny'

    def __init__(self, arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3), drop_path_rate=0.,
                 frozen_stages=-1, with_cp=False, scan_backend=None, init_cfg=None):
        super().__init__(frozen_stages=frozen_stages, with_cp=with_cp, scan_backend=scan_backend,
                         init_cfg=init_cfg)
        self.arch = a = self.resolve_arch(arch)
        for key in ('stem', 'downsample'):
            table = STEMS if key == 'stem' else DOWNSAMPLES
            if a[key] not in table:
                raise ValueError(f'VMamba: arch {key}={a[key]!r}; use one of {sorted(table)}')
        self.in_channels = in_channels
        self.depths = tuple(a['depths'])
        self.check_settings(len(self.depths), drop_path_rate, embed_dims=a['embed_dims'])
        self.dims = [int(a['embed_dims'] * 2**i) for i in range(len(self.depths))]
        self.select_outputs(out_indices, self.stage_points())
        # v0's 4x4 patches need whole patches; the v2 stem's stride-2 convs take any size
        self.pad_to = 4 if a['stem'] == 'patch' else 1
        self.patch_embed = STEMS[a['stem']](in_channels, self.dims[0])
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, dim) in enumerate(zip(self.depths, self.dims)):
            first = sum(self.depths[:i])
            blocks = nn.ModuleList(
                PreNormBlock(dim, SS2D(dim, a['d_state'], a['ssm_ratio'], a['dt_rank'],
                                       a['conv_bias'], a['gate']),
                             mlp_ratio=a['mlp_ratio'], drop_path=dpr[first + j])
                for j in range(depth))
            last = i == len(self.depths) - 1
            downsample = (nn.Identity() if last
                          else DOWNSAMPLES[a['downsample']](dim, self.dims[i + 1]))
            self.layers.append(nn.ModuleDict(dict(blocks=blocks, downsample=downsample)))
        self.add_out_norms(nn.LayerNorm)  # channel-last
        self._share_scan_backend()

    def forward(self, x):
        self.check_images(x)
        if self.pad_to > 1:
            x = F.pad(x, (0, -x.shape[3] % self.pad_to, 0, -x.shape[2] % self.pad_to))
        x = self.patch_embed(x)  # (batch, H, W, C)
        outs = []
        for i, layer in enumerate(self.layers):
            batch, H, W, C = x.shape
            tokens = x.reshape(batch, H * W, C)
            for block in layer['blocks']:
                tokens = self.run_block(block, tokens, (H, W))
            x = tokens.view(batch, H, W, C)
            if i in self.out_indices:
                outs.append(self.out_norm(i)(x).permute(0, 3, 1, 2).contiguous())
            x = layer['downsample'](x)
        return tuple(outs)

    def checkpoint_filter(self, state_dict):
        return convert_official(state_dict)


# ---- the VMamba release (MzeroMiko/VMamba, ``{'model': state_dict}``) -> mmssm's keys ---------
# The classification release (vssm1_tiny_0230s, vssm_small_0229, vssm_base_0229) has our keys plus
# ``classifier.*``. The first version's files (vssmtiny_dp01) use older module names, the
# repository's single-file model stores x_proj / dt_projs as grouped linear layers, and a dense
# model trained with mmseg/mmdet has everything under ``backbone.``.
DROPPED_PREFIXES = ('classifier.', 'head.', 'norm.')
RENAMED = (('patch_embed.proj.', 'patch_embed.0.'), ('patch_embed.norm.', 'patch_embed.2.'),
           ('.ln_1.', '.norm.'), ('.self_attention.', '.op.'))
FLATTENED = (('.op.x_proj.weight', '.op.x_proj_weight'),
             ('.op.dt_projs.weight', '.op.dt_projs_weight'))


def convert_official(state_dict):
    """Any VMamba release layout -> mmssm's keys. Model independent; mmssm's own keys pass
    unchanged."""
    out = {}
    for key, value in backbone_weights(state_dict, DROPPED_PREFIXES).items():
        for old, new in RENAMED:
            key = key.replace(old, new)
        for old, new in FLATTENED:
            if key.endswith(old):
                key = key[:-len(old)] + new
                value = value.reshape(4, -1, value.shape[-1])  # the four routes
        out[key] = value
    return out
