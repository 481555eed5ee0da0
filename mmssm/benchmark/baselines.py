"""The baselines a benchmark measures beside our models: timm backbones (built without
downloading weights), and our configs with their backbone swapped for one of them.

``TimmBackbone`` returns timm's own ``forward_intermediates``: the outputs of chosen blocks of a
plain ViT (all at the patch stride, like Vim's) or of the four stages of a hierarchical model.
"""
from dataclasses import dataclass
from typing import Tuple

import timm
from mmengine.config import ConfigDict
from mmengine.model import BaseModule

from mmssm.registry import register_model


@dataclass(frozen=True)
class Baseline:
    timm_name: str
    plain: bool  # one stride (ViT) rather than four stages
    # what lets the model take any input size: a ViT resizes its position embedding, Swin
    # builds its attention masks for the size it is given
    size_kwargs: Tuple[Tuple[str, object], ...] = ()
    fused_attn: bool = True  # DeiT: torch's fused scaled_dot_product_attention


_VIT = (('dynamic_img_size', True), )
BASELINES = {
    'deit-ti': Baseline('deit_tiny_patch16_224', True, _VIT),
    'deit-s': Baseline('deit_small_patch16_224', True, _VIT),
    # the attention the Vim paper compared against: softmax(q k^T) v written out, no SDPA
    'deit-ti-eager': Baseline('deit_tiny_patch16_224', True, _VIT, fused_attn=False),
    'deit-s-eager': Baseline('deit_small_patch16_224', True, _VIT, fused_attn=False),
    'swin-t': Baseline('swin_tiny_patch4_window7_224', False, (('strict_img_size', False), )),
    'convnext-t': Baseline('convnext_tiny', False),
}


def get_baseline(name: str) -> Baseline:
    """A name of BASELINES, or 'timm:<model>' for any timm model with forward_intermediates
    (a plain one is given dynamic_img_size)."""
    if name.startswith('timm:'):
        model = timm.create_model(name[5:], pretrained=False)
        plain = len({info['reduction'] for info in model.feature_info}) == 1
        return Baseline(name[5:], plain, _VIT if plain else ())
    if name not in BASELINES:
        raise ValueError(f'unknown baseline {name!r}; choose from {sorted(BASELINES)} or give '
                         f"'timm:<model name>'")
    return BASELINES[name]


@register_model()
class TimmBackbone(BaseModule):
    """A timm model as an mmseg/mmdet backbone: ``out_indices`` are blocks of a plain ViT or
    stages of a hierarchical model; outputs are NCHW. Randomly initialised (benchmarks only):
    ``timm_kwargs`` go to timm.create_model."""

    def __init__(self, model_name, out_indices, fused_attn=True, timm_kwargs=None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.model = timm.create_model(model_name, pretrained=False, num_classes=0,
                                       **(timm_kwargs or {}))
        self.out_indices = list(out_indices)
        self.model.prune_intermediate_layers(self.out_indices, prune_head=True, prune_norm=True)
        if not fused_attn:
            for module in self.model.modules():
                if hasattr(module, 'fused_attn'):
                    module.fused_attn = False
        self.out_channels = [self.model.feature_info[i]['num_chs'] for i in self.out_indices]

    def forward(self, x):
        return tuple(self.model.forward_intermediates(
            x, indices=self.out_indices, intermediates_only=True, output_fmt='NCHW'))


def baseline_backbone_cfg(baseline: Baseline, task: str, img_size=None):
    """The TimmBackbone config: for a plain ViT the last block of each quarter of its depth for
    segmentation (as UperNet on Vim takes) or only the last block for detection (ViTDet's simple
    feature pyramid); the four stages of a hierarchical model. A plain model's position embedding
    is laid out for ``img_size`` (the config backbone's)."""
    kwargs = dict(baseline.size_kwargs)
    if img_size is not None and baseline.plain:
        kwargs['img_size'] = img_size
    info = timm.create_model(baseline.timm_name, pretrained=False, **kwargs).feature_info
    if not baseline.plain:
        out_indices = list(range(len(info)))
    elif task == 'mmdet':
        out_indices = [len(info) - 1]
    else:
        out_indices = [len(info) * q // 4 - 1 for q in range(1, 5)]
    return dict(type='TimmBackbone', model_name=baseline.timm_name, out_indices=out_indices,
                fused_attn=baseline.fused_attn, timm_kwargs=kwargs)


def swap_backbone(model_cfg, baseline: Baseline, task: str):
    """``model_cfg`` with its backbone replaced by ``baseline``: for segmentation, a plain ViT keeps
    (or gets) mmseg's Feature2Pyramid and a hierarchical model feeds UPerHead directly; for
    detection, a plain ViT gets ViTDet's SimpleFeaturePyramid and a hierarchical model an FPN, both
    with the config's output channels and levels. Their input channels are left for the model to
    take from the baseline's ``out_channels`` (the configs' models do: mmssm/models/
    from_backbone.py). Everything else (heads, losses, test settings) stays the config's."""
    cfg = ConfigDict(model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else model_cfg)
    cfg.backbone = ConfigDict(baseline_backbone_cfg(baseline, task, cfg.backbone.get('img_size')))
    neck = cfg.get('neck')
    if task == 'mmseg':
        if not baseline.plain:
            cfg.neck = None
        elif neck is None or neck.type != 'Feature2Pyramid':
            cfg.neck = ConfigDict(type='Feature2Pyramid', rescales=[4, 2, 1, 0.5],
                                  norm_cfg=cfg.decode_head.get('norm_cfg'))
        else:
            cfg.neck.embed_dim = None
        aux = cfg.get('auxiliary_head')
        for head in [cfg.decode_head] + (aux if isinstance(aux, list) else [aux] if aux else []):
            head.in_channels = None
    else:
        if neck is None or 'out_channels' not in neck:
            raise ValueError('swap_backbone: a detection config needs a neck with out_channels')
        out, num_outs = neck.out_channels, neck.get('num_outs', 5)
        if not baseline.plain:
            cfg.neck = ConfigDict(type='FPN', out_channels=out, num_outs=num_outs)
        elif neck.type == 'SimpleFeaturePyramid':
            cfg.neck.in_channels = None
        else:
            cfg.neck = ConfigDict(type='SimpleFeaturePyramid', out_channels=out,
                                  scale_factors=(4.0, 2.0, 1.0, 0.5), num_outs=num_outs)
    return cfg
