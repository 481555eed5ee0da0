"""What every mmssm backbone does the same way: arch settings, out_indices and what they output,
Pretrained loading, frozen stages, gradient checkpointing, layer depth for layer-wise lr decay, the
scan backend; and, in ``HierarchicalBackbone``, what the staged families (VMamba, MambaVision) share.

A family subclasses ``SSMBackbone`` (or ``HierarchicalBackbone``), sets the class attributes and
overrides the hooks:

* ``arch_zoo`` (name -> settings), ``arch_aliases`` (other name -> name), and either
  ``custom_arch_base`` (a custom dict starts from that arch's settings) or ``custom_arch_required``
  (keys a custom dict must give; the rest come from ``arch_defaults``);
* ``select_outputs(out_indices, points)`` in ``__init__``: every output the family can give, as
  timm's ``feature_info`` entries; it sets ``out_indices``, ``feature_info`` and ``out_channels``;
* ``checkpoint_filter(state_dict)``: the family's release layout -> the model's keys;
* ``may_lack``: fnmatch patterns of keys the model may initialise itself when a checkpoint lacks them;
* ``frozen_parts()``: the modules and parameters ``frozen_stages`` freezes;
* ``layer_depth(name)``: 0 for the stem, i + 1 for block i (counted over all stages), None for
  any other name; ``num_blocks``;
* ``reset_weights()``: the family's random initialisation (when no checkpoint is loaded);
* ``_share_scan_backend()`` at the end of ``__init__``, once the mixers are built: they take the
  backbone's ``scan_backend``.
"""
import numbers

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from timm.layers import trunc_normal_

from mmssm.checkpoints import load_state_dict_strict, read_state_dict
from mmssm_kernels import BACKENDS
from ..layers.ssm import SelectiveSSM


class SSMBackbone(BaseModule):
    arch_zoo = {}
    arch_aliases = {}
    arch_defaults = {}
    custom_arch_base = None
    custom_arch_required = ()
    may_lack = ()

    def __init__(self, frozen_stages=-1, with_cp=False, scan_backend=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        if scan_backend is not None and scan_backend not in BACKENDS:
            raise ValueError(f'{type(self).__name__}: scan_backend={scan_backend!r}; use one of '
                             f'{BACKENDS}, or None for the global default (MMSSM_SCAN_BACKEND)')
        self.scan_backend = scan_backend

    # ---- settings -------------------------------------------------------------------------
    @classmethod
    def resolve_arch(cls, arch):
        """A name of ``arch_zoo`` (or an alias), or a dict of settings -> the full settings."""
        name = cls.__name__
        if isinstance(arch, str):
            key = cls.arch_aliases.get(arch, arch)
            if key not in cls.arch_zoo:
                raise ValueError(f'{name}: unknown arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_zoo) + sorted(cls.arch_aliases)} or pass a '
                                 f'dict of hyper-parameters')
            return dict(cls.arch_zoo[key])
        if not isinstance(arch, dict):
            raise TypeError(f'{name}: arch must be a name or a dict, got {type(arch).__name__}')
        base = (cls.arch_zoo[cls.custom_arch_base] if cls.custom_arch_base
                else {**cls.arch_defaults})
        accepted = set(base) | set(cls.custom_arch_required)
        unknown = sorted(set(arch) - accepted)
        missing = sorted(set(cls.custom_arch_required) - set(arch))
        if unknown or missing:
            raise ValueError(f'{name}: custom arch needs {sorted(cls.custom_arch_required)} and '
                             f'accepts {sorted(accepted)}; missing {missing}, unknown {unknown}')
        return {**base, **arch}

    def check_settings(self, num_stages, drop_path_rate, **positive):
        """Settings out of range -> an error naming the setting and its range, before a layer is
        built. ``num_stages``: how many parts frozen_stages can freeze; ``positive``: settings
        that must be whole numbers of at least 1 (or sequences of them)."""
        name = type(self).__name__

        def whole(value):
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)

        if not (whole(self.frozen_stages) and -1 <= self.frozen_stages <= num_stages):
            raise ValueError(f'{name}: frozen_stages must be a whole number from -1 (train all) '
                             f'to {num_stages} (freeze all), got {self.frozen_stages!r}')
        if not (isinstance(drop_path_rate, numbers.Real) and 0 <= drop_path_rate < 1):
            raise ValueError(f'{name}: drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        for key, value in positive.items():
            several = isinstance(value, (list, tuple))
            values = value if several else [value]
            if not values or not all(whole(v) and v >= 1 for v in values):
                what = 'whole numbers' if several else 'a whole number'
                raise ValueError(f'{name}: {key} must be {what} of at least 1, got {value!r}')

    def select_outputs(self, out_indices, points):
        """``points``: every output the family can give, in order, as timm's ``feature_info``
        entries (``num_chs``, ``reduction``: its stride, ``module``: the name of what makes it).
        Sets ``out_indices`` (sorted; negative ones count from the end) and ``feature_info``, the
        entries of the outputs ``forward`` returns."""
        count = len(points)
        out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        bad = [i for i in out_indices if not -count <= i < count]
        if bad:
            raise ValueError(f'{type(self).__name__}: out_indices {bad} out of range for '
                             f'{count} outputs')
        self.out_indices = sorted(i % count for i in out_indices)
        self.feature_info = [dict(points[i]) for i in self.out_indices]

    @property
    def out_channels(self):
        """Channels of each output of ``forward``: what a neck's or head's ``in_channels`` is."""
        return [info['num_chs'] for info in self.feature_info]

    def check_images(self, x):
        """Bad input -> an error naming the shape expected and the setting to change."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects images (batch, {self.in_channels}, H, '
                             f'W), got {tuple(x.shape)}; set in_channels to match your data')

    def _share_scan_backend(self):
        """Every mixer scans on the backbone's ``scan_backend`` (None: the global default)."""
        for m in self.modules():
            if isinstance(m, SelectiveSSM):
                m.scan_backend = self.scan_backend

    # ---- weights --------------------------------------------------------------------------
    def init_weights(self):
        cfg = self.init_cfg
        if cfg is not None and cfg.get('type') == 'Pretrained':
            self.load_pretrained(cfg['checkpoint'], cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()
        self.reset_weights()

    def reset_weights(self):
        """The family's random initialisation beyond what the modules do themselves."""

    def load_pretrained(self, path, prefix=None):
        state_dict = self.checkpoint_filter(read_state_dict(path, prefix))
        load_state_dict_strict(self, state_dict, path, may_lack=self.may_lack)

    def checkpoint_filter(self, state_dict):
        """A release checkpoint's state dict -> this model's keys (identity by default)."""
        return state_dict

    def no_weight_decay(self):
        """Names of the parameters marked ``_no_weight_decay`` (A, D, dt bias, embeddings)."""
        return {n for n, p in self.named_parameters() if getattr(p, '_no_weight_decay', False)}

    # ---- training -------------------------------------------------------------------------
    def frozen_parts(self):
        """Modules and parameters frozen by ``frozen_stages``."""
        return []

    def train(self, mode=True):
        super().train(mode)
        if self.frozen_stages >= 0:
            for part in self.frozen_parts():
                if isinstance(part, torch.nn.Module):
                    part.eval()
                    part.requires_grad_(False)
                else:
                    part.requires_grad = False
        return self

    def run_block(self, block, *args):
        """``block(*args)``, gradient-checkpointed when ``with_cp`` and training."""
        if self.with_cp and self.training and torch.is_grad_enabled():
            return cp.checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    # ---- layer-wise lr decay (mmpretrain's protocol) ----------------------------------------
    @property
    def num_blocks(self):
        raise NotImplementedError

    def layer_depth(self, name):
        """0 for the stem, i + 1 for block i, None for a name that is neither."""
        raise NotImplementedError

    def get_layer_depth(self, param_name, prefix=''):
        """(depth, num_layers): 0 for the stem, i + 1 for block i, num_layers - 1 for everything
        after the last block and outside the backbone (heads)."""
        num_layers = self.num_blocks + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        depth = self.layer_depth(param_name[len(prefix):])
        return (num_layers - 1 if depth is None else depth), num_layers


class HierarchicalBackbone(SSMBackbone):
    """Stages of blocks (``depths``) at widths ``dims`` and strides 4, 8, 16, 32, ...: stage i is
    the module ``<stages_name>.i`` with ``blocks`` and ``downsample``, after a ``patch_embed``
    stem. Each returned stage goes through its own norm ``outnorm{i}``, as the releases' dense
    wrappers do; a classification checkpoint has none, so a dense model starts them afresh."""

    stages_name = 'layers'
    may_lack = ('outnorm*', )

    @property
    def stages(self):
        return getattr(self, self.stages_name)

    def stage_points(self):
        """The outputs the stages can give (for ``select_outputs``)."""
        return [dict(num_chs=dim, reduction=4 * 2**i, module=f'outnorm{i}')
                for i, dim in enumerate(self.dims)]

    def add_out_norms(self, norm_layer):
        for i in self.out_indices:
            self.add_module(f'outnorm{i}', norm_layer(self.dims[i]))

    def out_norm(self, i):
        return getattr(self, f'outnorm{i}')

    def reset_weights(self):
        # both releases' initialisation (timm's trunc_normal_, which draws other values than
        # torch's); the SSM parameters keep Mamba's (SelectiveSSM)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def frozen_parts(self):
        k = self.frozen_stages
        return [self.patch_embed, *self.stages[:k],
                *(self.out_norm(i) for i in self.out_indices if i < k)]

    @property
    def num_blocks(self):
        return sum(self.depths)

    def layer_depth(self, name):
        """Block j of stage i is (blocks before stage i) + j + 1; a stage's downsampling and
        output norm count with its last block."""
        parts = name.split('.')
        if parts[0] == 'patch_embed':
            return 0
        if parts[0] == self.stages_name and len(parts) > 2:
            stage = int(parts[1])
            if parts[2] == 'blocks':
                return sum(self.depths[:stage]) + int(parts[3]) + 1
            return sum(self.depths[:stage + 1])
        if parts[0].startswith('outnorm'):
            return sum(self.depths[:int(parts[0][len('outnorm'):]) + 1])
        return None
