"""Layer-wise learning-rate decay for mmssm backbones (as BEiT/Vim fine-tuning uses).

mmseg's own LayerDecayOptimizerConstructor recognises BEiT/ConvNeXt parameter names only. Here the
backbone itself says how deep each of its parameters is (``get_layer_depth(name, prefix)``, mmpretrain's
protocol), so one constructor serves every mmssm backbone in segmentation and detection models alike.
"""
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmssm.registry import register_optim_wrapper_constructor


@register_optim_wrapper_constructor()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """paramwise_cfg: ``layer_decay_rate`` (e.g. 0.92). Parameters outside the backbone (neck,
    heads) keep the base lr, the backbone's last block gets ``rate``, the one before ``rate**2``,
    down to the embeddings. 1-D parameters (norms, biases) and the parameters the backbone lists in
    ``no_weight_decay()`` (A, D, dt bias, embeddings) get no weight decay."""

    def add_params(self, params, module, **kwargs):
        backbone = module.backbone
        if not hasattr(backbone, 'get_layer_depth'):
            raise TypeError(f'{type(backbone).__name__} does not define get_layer_depth(); '
                            f'layer-wise lr decay needs an mmssm (or mmpretrain) backbone')
        rate = self.paramwise_cfg.get('layer_decay_rate', 1.0)
        skip_decay = {f'backbone.{n}' for n in backbone.no_weight_decay()}
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            depth, num_layers = backbone.get_layer_depth(name, 'backbone.')
            no_decay = param.ndim == 1 or name in skip_decay
            key = (depth, no_decay)
            if key not in groups:
                groups[key] = dict(params=[], lr=self.base_lr * rate**(num_layers - 1 - depth),
                                   weight_decay=0. if no_decay else self.base_wd)
            groups[key]['params'].append(param)
        params.extend(groups[k] for k in sorted(groups))
        print_log(f'layer-wise lr decay {rate}: {len(groups)} parameter groups, lr scale '
                  f'{rate**(num_layers - 1):.3g} (stem) to 1 (heads)', logger='current')
