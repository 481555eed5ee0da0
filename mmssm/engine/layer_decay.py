"""Layer-wise learning-rate decay for mmssm backbones (as BEiT/Vim fine-tuning uses).

mmseg's own LayerDecayOptimizerConstructor recognises BEiT/ConvNeXt parameter names only. Here the
backbone itself says how deep each of its parameters is (``layer_id(name)``, ``num_layers``), so one
constructor serves every mmssm backbone in segmentation and detection models alike.
"""
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmssm.registry import register_optim_wrapper_constructor


@register_optim_wrapper_constructor()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """paramwise_cfg: ``layer_decay_rate`` (e.g. 0.92). Parameters outside the backbone (neck,
    heads) keep the base lr, the backbone's last block gets ``rate``, the one before ``rate**2``,
    down to the embeddings. 1-D parameters (norms, biases, D) and the names the backbone lists in
    ``no_weight_decay()`` get no weight decay."""

    def add_params(self, params, module, **kwargs):
        backbone = module.backbone
        if not hasattr(backbone, 'layer_id'):
            raise TypeError(f'{type(backbone).__name__} does not define layer_id(); layer-wise lr '
                            f'decay needs an mmssm backbone')
        rate = self.paramwise_cfg.get('layer_decay_rate', 1.0)
        top = backbone.num_layers + 1
        skip_decay = backbone.no_weight_decay()
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            in_backbone = name.startswith('backbone.')
            depth = backbone.layer_id(name[len('backbone.'):]) if in_backbone else top
            no_decay = param.ndim == 1 or (in_backbone and name.rsplit('.', 1)[-1] in skip_decay)
            key = (depth, no_decay)
            if key not in groups:
                groups[key] = dict(params=[], lr=self.base_lr * rate**(top - depth),
                                   weight_decay=0. if no_decay else self.base_wd)
            groups[key]['params'].append(param)
        params.extend(groups[k] for k in sorted(groups))
        print_log(f'layer-wise lr decay {rate}: {len(groups)} parameter groups, lr scale '
                  f'{rate**top:.3g} (embeddings) to 1 (heads)', logger='current')
