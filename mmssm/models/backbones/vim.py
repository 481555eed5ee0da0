"""Vision Mamba (Vim, Zhu et al. 2024) as a dense-prediction backbone.

A plain (non-hierarchical) stack of bidirectional Mamba blocks over 16x16 patches. Like the official
segmentation code, the features handed to the neck are the mixer outputs of the blocks in
``out_indices``, all at the patch stride; a neck (mmseg's Feature2Pyramid for segmentation, ViTDet's
SimpleFeaturePyramid for detection) turns them into strides 4 to 32 (and 64).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, RmsNorm, lecun_normal_, resample_abs_pos_embed, trunc_normal_

from mmssm.checkpoints import backbone_weights
from mmssm.registry import register_model
from mmssm_kernels import ScanPaths
from ..layers import SelectiveSSM
from ..layers.fused import add_rms_norm
from .base import SSMBackbone

BIDIRECTIONAL = ScanPaths.bidirectional(merge='mean')
#: tokens a row of the scan's inputs is allocated in multiples of: 16-byte aligned rows in any
#: dtype up to fp32 (the scan kernels' vector loads need them; Vim's 1025 tokens are not)
ROW_ALIGN = 16


class BiMambaMixer(SelectiveSSM):
    """Vim's bidirectional Mamba mixer ("bimamba v2").

    As in the official Vim: in_proj and out_proj are shared, each direction has its own conv1d,
    x_proj, dt_proj, A and D (stacked here as the two routes of ``SelectiveSSM``; the checkpoint
    filter stacks the release's per-direction tensors), and the two directions' outputs are
    averaged. The backward direction is not computed on flipped copies: its causal conv becomes an
    anti-causal conv (kernel mirrored, padding on the right), and the scan walks it as the
    'reverse' route of one bidirectional scan call that also does the averaging.
    """

    def __init__(self, dim, d_state=16, d_conv=4, expand=2, dt_rank='auto', num_layers=1):
        d_inner = int(expand * dim)
        super().__init__(d_inner, d_state, dt_rank, num_routes=2, d_model=dim)
        self.d_conv = d_conv
        self.in_proj = nn.Linear(dim, d_inner * 2, bias=False)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)
        self.conv1d, self.conv1d_b = (nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner,
                                                padding=d_conv - 1) for _ in range(2))
        # Mamba scales out_proj by 1/sqrt(depth) for the residual stream
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.out_proj.weight, a=math.sqrt(5))
            self.out_proj.weight /= math.sqrt(num_layers)

    def front(self, u):
        """Each direction's causal conv and SiLU, (batch, d_inner, L) -> (batch, 2*d_inner, L),
        in rows allocated to a multiple of 16 tokens (zeros after the sequence: a causal conv's
        outputs on it are unchanged), so that the scan reads 16-byte vectors."""
        L, pad = u.shape[-1], self.d_conv - 1
        u = F.pad(u, (0, -L % ROW_ALIGN))
        u_fwd = self.conv1d(u)[..., :u.shape[-1]]
        # the backward direction's causal conv, seen in forward token order: the mirrored kernel
        # over the zeros after the sequence (padded on both sides, its outputs from `pad` on)
        u_bwd = F.conv1d(u, self.conv1d_b.weight.flip(-1), self.conv1d_b.bias, padding=pad,
                         groups=self.d_inner)[..., pad:]
        return F.silu(torch.cat((u_fwd, u_bwd), dim=1), inplace=True)[..., :L]

    def front_block(self, x, start, stop):
        """Without gradients, steps start:stop of both directions straight from the mixer's
        input x (batch, L, dim): each direction's in_proj over its tokens and the d_conv - 1
        before them in its direction, its conv and SiLU; u and z (batch, 2*d_inner, t), each
        direction's block in its step order (the reverse one's tokens descending)."""
        L, pad, t = x.shape[1], self.d_conv - 1, stop - start
        # the forward direction's tokens start:stop, the reverse one's L-stop:L-start
        f0, b1 = max(start - pad, 0), min(L - start + pad, L)
        uf, zf = self.in_proj(x[:, f0:stop]).transpose(1, 2).chunk(2, dim=1)
        ub, zb = self.in_proj(x[:, L - stop:b1]).transpose(1, 2).chunk(2, dim=1)
        # zeros before (after) the sequence where the halo runs off it
        uf = F.conv1d(F.pad(uf, (pad - (start - f0), 0)).contiguous(), self.conv1d.weight,
                      self.conv1d.bias, groups=self.d_inner)
        ub = F.conv1d(F.pad(ub, (0, pad - (b1 - (L - start)))).contiguous(),
                      self.conv1d_b.weight.flip(-1), self.conv1d_b.bias, groups=self.d_inner)
        u = F.silu(torch.cat((uf, ub.flip(-1)), dim=1), inplace=True)
        return u, torch.cat((zf[..., -t:], zb[..., :t].flip(-1)), dim=1)

    def forward(self, x):
        """x: (batch, L, dim) -> (batch, L, dim)."""
        if self.streams(x):
            # in_proj's output, the conv'd input and dt made a block of tokens at a time
            dtype = (torch.get_autocast_dtype(x.device.type)
                     if torch.is_autocast_enabled(x.device.type) else x.dtype)
            y = self.mix_streamed(lambda start, stop: self.front_block(x, start, stop),
                                  BIDIRECTIONAL, x.shape[0], x.shape[1], dtype)
            return self.out_proj(y.transpose(1, 2))
        L = x.shape[1]
        return self.mix_projected(
            self.in_proj.weight @ F.pad(x, (0, 0, 0, -L % ROW_ALIGN)).transpose(1, 2), L)

    def mix_projected(self, xz, L):
        """The mixer after in_proj: xz (batch, 2*d_inner, tokens) in rows of a multiple of 16
        tokens (the gate z is a view of them that the scan reads in 16-byte vectors)."""
        u, z = xz[..., :L].chunk(2, dim=1)
        y = self.mix(u, BIDIRECTIONAL, z=z)
        return self.out_proj(y.transpose(1, 2))


class VimBlock(nn.Module):
    """Add -> RMSNorm -> mixer, returning (mixer output, residual) as the official block does, so
    the residual stream is kept apart (in fp32) from what each block adds to it. The add, the
    norm and the mixer's in_proj are one function (:func:`add_rms_norm`) that keeps the residual
    and 1/rms only: in_proj's input is recomputed from them in the backward."""

    def __init__(self, dim, mixer_cfg, drop_path=0., residual_in_fp32=True, norm_eps=1e-5):
        super().__init__()
        self.norm = RmsNorm(dim, eps=norm_eps)
        self.mixer = BiMambaMixer(dim, **mixer_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.residual_in_fp32 = residual_in_fp32

    def forward(self, hidden, residual=None):
        if residual is not None:
            hidden = self.drop_path(hidden)
        args = (hidden, residual, self.norm.weight, self.norm.eps, self.residual_in_fp32)
        if self.mixer.streams(hidden):  # the mixer runs in_proj a block of tokens at a time
            hidden, residual = add_rms_norm(*args)
            return self.mixer(hidden), residual
        xz, residual = add_rms_norm(*args, proj_weight=self.mixer.in_proj.weight,
                                    row_align=ROW_ALIGN)
        return self.mixer.mix_projected(xz, hidden.shape[1]), residual


@register_model()
class VisionMamba(SSMBackbone):
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
        scan_backend: the selective scan's backend: 'auto' (Triton for CUDA tensors), 'triton' or
            'torch'; None takes the global default, MMSSM_SCAN_BACKEND ('auto' when unset).
        init_cfg: dict(type='Pretrained', checkpoint=PATH) loads an official Vim checkpoint.
    """

    arch_zoo = {
        'tiny': dict(embed_dims=192, depth=24),
        'small': dict(embed_dims=384, depth=24),
        'base': dict(embed_dims=768, depth=24),
    }
    custom_arch_required = ('embed_dims', 'depth')
    arch_defaults = dict(d_state=16, expand=2, dt_rank='auto', d_conv=4, patch_size=16, stride=16)

    def __init__(self, arch='tiny', img_size=224, in_channels=3, out_indices=None,
                 with_cls_token=False, drop_rate=0., drop_path_rate=0., frozen_stages=-1,
                 with_cp=False, residual_in_fp32=True, scan_backend=None, init_cfg=None):
        super().__init__(frozen_stages=frozen_stages, with_cp=with_cp, scan_backend=scan_backend,
                         init_cfg=init_cfg)
        self.arch = {**self.arch_defaults, **self.resolve_arch(arch)}
        embed_dims, depth = self.arch['embed_dims'], self.arch['depth']
        self.check_settings(depth, drop_path_rate, embed_dims=embed_dims, depth=depth)
        self.embed_dims, self.depth, self.in_channels = embed_dims, depth, in_channels
        self.patch_size, self.stride = self.arch['patch_size'], self.arch['stride']
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.grid_size = self._grid(img_size)
        if out_indices is None:  # the last block of each quarter of the depth
            out_indices = sorted({max(depth * q // 4 - 1, 0) for q in range(1, 5)})
        # every block's output is at the patch stride
        self.select_outputs(out_indices, [
            dict(num_chs=embed_dims, reduction=self.stride, module=f'layers.{i}')
            for i in range(depth)])

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
        mixer_cfg.update(num_layers=depth)
        self.layers = nn.ModuleList(
            VimBlock(embed_dims, mixer_cfg, dpr[i], residual_in_fp32) for i in range(depth))
        for p in (self.pos_embed, getattr(self, 'cls_token', None),
                  getattr(self, 'cls_pos_embed', None)):
            if p is not None:
                p._no_weight_decay = True
        self._share_scan_backend()

    def _grid(self, hw):
        return tuple((s - self.patch_size) // self.stride + 1 for s in hw)

    def reset_weights(self):
        # the official Vim initialisation; the mixers set their own Mamba-specific weights
        lecun_normal_(self.patch_embed.weight)
        nn.init.zeros_(self.patch_embed.bias)
        for p in (self.pos_embed, getattr(self, 'cls_token', None), getattr(self, 'cls_pos_embed', None)):
            if p is not None:
                trunc_normal_(p, std=.02)

    def layer_depth(self, name):
        head, _, rest = name.partition('.')
        if head in ('patch_embed', 'pos_embed', 'cls_token', 'cls_pos_embed'):
            return 0
        if head == 'layers':
            return int(rest.split('.')[0]) + 1
        return None

    @property
    def num_blocks(self):
        return self.depth

    def checkpoint_filter(self, state_dict):
        return fit_to_model(convert_official(state_dict), self)

    def _embed(self, x):
        self.check_images(x)
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
            x, residual = self.run_block(layer, x, residual)
            if i in self.out_indices:
                tokens = x
                if self.with_cls_token:
                    mid = (x.shape[1] - 1) // 2
                    tokens = torch.cat((x[:, :mid], x[:, mid + 1:]), dim=1)
                outs.append(tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w).contiguous())
        return tuple(outs)

    def frozen_parts(self):
        return [self.patch_embed, *self.layers[:self.frozen_stages],
                *(p for p in (self.pos_embed, getattr(self, 'cls_token', None),
                              getattr(self, 'cls_pos_embed', None)) if p is not None)]


# ---- the official Vim release (hustvl/Vim, ``{'model': state_dict}``) -> mmssm's keys ---------
# It differs in four places: the patch embedding sits in a ``patch_embed.proj`` submodule, the class
# token's position embedding is stored inside ``pos_embed`` at the middle index (where the class
# token is inserted), each direction's SSM parameters are stored apart (x_proj / x_proj_b, ...),
# and there is a classifier (``head``) and a final norm (``norm_f``) that dense prediction does not
# use. A dense model trained with mmseg/mmdet has everything under ``backbone.``.
DROPPED_PREFIXES = ('head.', 'norm_f.', 'rope.')
# (ours, the release's forward and backward tensors, how the routes are stacked)
STACKED = (('x_proj_weight', 'x_proj.weight', 'x_proj_b.weight', torch.stack),
           ('dt_projs_weight', 'dt_proj.weight', 'dt_proj_b.weight', torch.stack),
           ('dt_projs_bias', 'dt_proj.bias', 'dt_proj_b.bias', torch.stack),
           ('A_logs', 'A_log', 'A_b_log', torch.cat),
           ('Ds', 'D', 'D_b', torch.cat))


def is_official(state_dict) -> bool:
    return 'patch_embed.proj.weight' in state_dict


def convert_official(state_dict):
    """Rename an official Vim state dict to mmssm's keys. Model independent: the position grid
    keeps its size and the class token is kept if present; a dict already in mmssm's keys passes
    unchanged."""
    out = {key.replace('patch_embed.proj.', 'patch_embed.'): value
           for key, value in backbone_weights(state_dict, DROPPED_PREFIXES).items()}
    if 'cls_token' in out and 'cls_pos_embed' not in out:
        pos = out['pos_embed']
        mid = (pos.shape[1] - 1) // 2
        out['cls_pos_embed'] = pos[:, mid:mid + 1]
        out['pos_embed'] = torch.cat((pos[:, :mid], pos[:, mid + 1:]), dim=1)
    for mixer in sorted({k[:-len('A_b_log')] for k in out if k.endswith('.A_b_log')}):
        for ours, fwd, bwd, stack in STACKED:
            out[mixer + ours] = stack((out.pop(mixer + fwd), out.pop(mixer + bwd)))
    return out


def fit_to_model(state_dict, model):
    """Fit a state dict in mmssm's keys to ``model``: resize the position grid (bicubic) and drop
    the class token when the model has none."""
    state_dict = dict(state_dict)
    if not model.with_cls_token:
        state_dict.pop('cls_token', None)
        state_dict.pop('cls_pos_embed', None)
    pos = state_dict.get('pos_embed')
    target = model.pos_embed.shape[1]
    if pos is not None and pos.dim() == 3 and pos.shape[1] != target:
        side = math.isqrt(pos.shape[1])
        if side * side != pos.shape[1]:
            raise ValueError(f'checkpoint pos_embed has {pos.shape[1]} positions, not a square grid; '
                             f'build the model with the img_size it was trained at')
        state_dict['pos_embed'] = resample_abs_pos_embed(pos, list(model.grid_size), [side, side],
                                                         num_prefix_tokens=0)
    return state_dict
