"""Stops a run that would evaluate or fine-tune weights that do not belong to its model.

mmengine's Runner loads ``load_from`` (and the test scripts' checkpoint) non-strictly and only logs
what did not match, so a checkpoint of another model gives the metrics of a randomly initialised
one without a word.
"""
import re

from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from mmssm.apis.errors import user_errors_reported
from mmssm.checkpoints import CheckpointError, describe_fit


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Checks a checkpoint the Runner loads (load_from, resume, tools/test.py) against the model
    before it is loaded.

    Args:
        strict: every model tensor must come from the file with its shape and the file must hold
            nothing else. Otherwise at least ``min_fraction`` of the model's tensors must be
            found, so that a few heads may differ. None (the default): strict when testing or
            resuming, not when fine-tuning from ``load_from``.
    """
    priority = 'VERY_HIGH'

    def __init__(self, strict=None, min_fraction=0.5):
        self.strict = strict
        self.min_fraction = min_fraction

    def after_load_checkpoint(self, runner, checkpoint):
        # one line (error: ..., exit code 1) under any Runner: mmseg's test.py builds mmengine's
        with user_errors_reported():
            self.check(runner, checkpoint)

    def check(self, runner, checkpoint):
        """Raises CheckpointError if ``checkpoint`` does not fit ``runner.model``."""
        path = runner._load_from or 'the checkpoint'
        model = runner.model
        # mmengine loads into what DDP or a test-time augmentation model (--tta) wraps
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        if 'state_dict' not in checkpoint and _is_backbone_release(model, checkpoint):
            raise CheckpointError(
                f'{path} is a backbone checkpoint (an official release), not one of this '
                f"model: load it as the backbone's pretrained weights instead, in the config "
                f"model.backbone.init_cfg=dict(type='Pretrained', checkpoint='{path}')")
        state_dict = checkpoint.get('state_dict', checkpoint)
        # the Runner strips DDP's 'module.' the same way before loading
        state_dict = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
        expected = model.state_dict()
        found, _, problems = describe_fit(state_dict, expected)
        if not problems:
            return
        fits = found >= self.min_fraction * len(expected)
        strict = self.strict
        if strict is None:
            # Runner.train builds its loop before loading; Runner.test never builds it
            strict = runner._resume or not isinstance(runner._train_loop, BaseLoop)
        if strict or not fits:
            hint = ('Is it a checkpoint of this config?' if strict else
                    'To start from a backbone-only file, load it with the backbone\'s init_cfg '
                    "(type='Pretrained', checkpoint=PATH, prefix='backbone.') instead")
            raise CheckpointError(
                f'{path} does not fit this {type(model).__name__}: {found} of {len(expected)} '
                f'model tensors found. ' + '; '.join(problems) + f'. {hint}')
        runner.logger.warning(f'{path}: {found} of {len(expected)} model tensors loaded; '
                              + '; '.join(problems))


def _is_backbone_release(model, checkpoint):
    """Whether the file is the model's backbone's own release (e.g. an ImageNet checkpoint): it
    fits the backbone once the backbone's checkpoint filter has renamed it."""
    backbone = getattr(model, 'backbone', None)
    if not hasattr(backbone, 'checkpoint_filter'):
        return False
    weights = checkpoint.get('model', checkpoint)
    try:
        weights = backbone.checkpoint_filter(weights)
    except Exception:  # a filter may reject a foreign layout outright
        return False
    found, _, problems = describe_fit(weights, backbone.state_dict(), backbone.may_lack)
    return not problems or found >= 0.9 * len(backbone.state_dict())
