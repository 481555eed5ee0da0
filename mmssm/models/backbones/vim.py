"""Vision Mamba (Vim, Zhu et al. 2024) as a dense-prediction backbone.

A plain (non-hierarchical) stack of bidirectional Mamba blocks over 16x16 patches. Like the official
segmentation code, the features handed to the neck are the mixer outputs of the blocks in
``out_indices``, all at the patch stride; a neck (mmseg's Feature2Pyramid for segmentation, ViTDet's
SimpleFeaturePyramid for detection) turns them into strides 4 to 32 (and 64).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from timm.layers import DropPath, RmsNorm, lecun_normal_, resample_abs_pos_embed, trunc_normal_

from mmssm.checkpoints import load_official_checkpoint
from mmssm.registry import register_model
from ..layers import BiMambaMixer

ARCH_DEFAULTS = dict(d_state=16, expand=2, dt_rank='auto', d_conv=4, patch_size=16, stride=16)
ARCH_SETTINGS = {
    'tiny': dict(embed_dims=192, depth=24),
    'small': dict(embed_dims=384, depth=24),
    'base': dict(embed_dims=768, depth=24),
}


class VimBlock(nn.Module):
    """Add -> RMSNorm -> mixer, returning (mixer output, residual) as the official block does, so
    the residual stream is kept apart (in fp32) from what each block adds to it."""

    def __init__(self, dim, mixer_cfg, drop_path=0., residual_in_fp32=True, norm_eps=1e-5):
        super().__init__()
        self.norm = RmsNorm(dim, eps=norm_eps)
        self.mixer = BiMambaMixer(dim, **mixer_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.residual_in_fp32 = residual_in_fp32

    def forward(self, hidden, residual=None):
        residual = hidden if residual is None else residual + self.drop_path(hidden)
        hidden = self.norm(residual.to(self.norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.float()
        return self.mixer(hidden), residual


@register_model()
class VisionMamba(BaseModule):
    """Vim backbone.

    Args:
        arch: 'tiny', 'small', 'base', or a dict with embed_dims and depth and optionally d_state,
            expand, dt_rank, d_conv, patch_size, stride.
        img_size: the size the learned position embedding is laid out for (pretraining size).
            Other input sizes work: the embedding grid is resized on the fly (bicubic) and inputs
            are padded to whole patches.
        in_channels: image channels.
        out_indices: blocks whose outputs are returned (negative counts from the end); by
            default the last of each quarter of the depth, (5, 11, 17, 23) for 24 blocks.
        with_cls_token: insert a class token in the middle of the sequence as the official
            classification models do (the official segmentation models do not).
        drop_path_rate: stochastic depth, rising linearly over the blocks.
        frozen_stages: -1 trains everything; 0 freezes the patch and position embeddings;
            k >= 1 freezes them and blocks 0..k-1.
        with_cp: gradient checkpointing of each block.
        scan_backend: force the selective scan's backend ('triton' or 'torch'); default picks
            Triton for CUDA tensors.
        init_cfg: dict(type='Pretrained', checkpoint=PATH) loads an official Vim checkpoint.
    """

    def __init__(self, arch='tiny', img_size=224, in_channels=3, out_indices=None,
                 with_cls_token=False, drop_rate=0., drop_path_rate=0., frozen_stages=-1,
                 with_cp=False, residual_in_fp32=True, scan_backend=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.arch = self._arch_settings(arch)
        embed_dims, depth = self.arch['embed_dims'], self.arch['depth']
        self.embed_dims, self.depth, self.in_channels = embed_dims, depth, in_channels
        self.patch_size, self.stride = self.arch['patch_size'], self.arch['stride']
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.grid_size = self._grid(img_size)
        self.out_indices = self._check_indices(out_indices, depth)
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp

        self.patch_embed = nn.Conv2d(in_channels, embed_dims, self.patch_size, self.stride)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], embed_dims))
        self.with_cls_token = with_cls_token
        if with_cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
            self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_drop = nn.Dropout(drop_rate)
        # the official models leave the first block without stochastic depth
        dpr = [0.] + torch.linspace(0, drop_path_rate, depth).tolist()
        mixer_cfg = {k: self.arch[k] for k in ('d_state', 'expand', 'dt_rank', 'd_conv')}
        mixer_cfg.update(num_layers=depth, scan_backend=scan_backend)
        self.layers = nn.ModuleList(
            VimBlock(embed_dims, mixer_cfg, dpr[i], residual_in_fp32) for i in range(depth))

    @staticmethod
    def _arch_settings(arch):
        if isinstance(arch, str):
            if arch not in ARCH_SETTINGS:
                raise ValueError(f'VisionMamba: unknown arch {arch!r}; choose one of '
                               f'{sorted(ARCH_SETTINGS)} or pass a dict of hyper-parameters')
            arch = ARCH_SETTINGS[arch]
        elif not isinstance(arch, dict):
            raise TypeError(f'VisionMamba: arch must be a name or a dict, got {type(arch).__name__}')
        unknown = set(arch) - {'embed_dims', 'depth', *ARCH_DEFAULTS}
        missing = {'embed_dims', 'depth'} - set(arch)
        if unknown or missing:
            raise ValueError(f'VisionMamba: custom arch needs embed_dims and depth and accepts '
                           f'{sorted(ARCH_DEFAULTS)}; missing {sorted(missing)}, unknown '
                           f'{sorted(unknown)}')
        return {**ARCH_DEFAULTS, **arch}

    @staticmethod
    def _check_indices(out_indices, depth):
        if out_indices is None:
            out_indices = sorted({max(depth * q // 4 - 1, 0) for q in range(1, 5)})
        out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        bad = [i for i in out_indices if not -depth <= i < depth]
        if bad:
            raise ValueError(f'VisionMamba: out_indices {bad} out of range for depth {depth}')
        return sorted(i % depth for i in out_indices)

    def _grid(self, hw):
        return tuple((s - self.patch_size) // self.stride + 1 for s in hw)

    def init_weights(self):
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            load_official_checkpoint(self, self.init_cfg['checkpoint'], self.init_cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()
        # the official Vim initialisation; the mixers set their own Mamba-specific weights
        lecun_normal_(self.patch_embed.weight)
        nn.init.zeros_(self.patch_embed.bias)
        for p in (self.pos_embed, getattr(self, 'cls_token', None), getattr(self, 'cls_pos_embed', None)):
            if p is not None:
                trunc_normal_(p, std=.02)

    def no_weight_decay(self):
        return {'pos_embed', 'cls_token', 'cls_pos_embed', 'A_log', 'A_b_log'}

    def layer_id(self, param_name: str) -> int:
        """Depth of a parameter for layer-wise lr decay: 0 for the embeddings, i + 1 for block i."""
        if param_name.startswith('layers.'):
            return int(param_name.split('.')[1]) + 1
        return 0

    @property
    def num_layers(self) -> int:
        return self.depth

    def _embed(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'VisionMamba expects images (batch, {self.in_channels}, H, W), got '
                             f'{tuple(x.shape)}; set in_channels to match your data')
        H, W = x.shape[-2:]
        # pad to whole patches: (size - patch) must be a multiple of the stride
        pad_h = max(self.patch_size - H, (-(H - self.patch_size)) % self.stride)
        pad_w = max(self.patch_size - W, (-(W - self.patch_size)) % self.stride)
        x = self.patch_embed(F.pad(x, (0, pad_w, 0, pad_h)))
        hw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        pos = self.pos_embed
        if tuple(hw) != self.grid_size:
            pos = resample_abs_pos_embed(pos, list(hw), list(self.grid_size), num_prefix_tokens=0)
        x = x + pos
        if self.with_cls_token:
            mid = x.shape[1] // 2
            cls = (self.cls_token + self.cls_pos_embed).expand(x.shape[0], -1, -1)
            x = torch.cat((x[:, :mid], cls, x[:, mid:]), dim=1)
        return self.pos_drop(x), hw

    def forward(self, x):
        x, (h, w) = self._embed(x)
        outs = []
        residual = None
        for i, layer in enumerate(self.layers):
            if self.with_cp and self.training and x.requires_grad:
                x, residual = cp.checkpoint(layer, x, residual, use_reentrant=False)
            else:
                x, residual = layer(x, residual)
            if i in self.out_indices:
                tokens = x
                if self.with_cls_token:
                    mid = (x.shape[1] - 1) // 2
                    tokens = torch.cat((x[:, :mid], x[:, mid + 1:]), dim=1)
                outs.append(tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w).contiguous())
        return tuple(outs)

    def _freeze(self):
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed, *self.layers[:self.frozen_stages]]
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False
        for name in ('pos_embed', 'cls_token', 'cls_pos_embed'):
            if hasattr(self, name):
                getattr(self, name).requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze()
        return self
