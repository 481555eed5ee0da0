from .autocast import AutocastOptimWrapper
from .checkpoint_fit import CheckpointFitHook
from .exact_resume import ExactResumeHook
from .layer_decay import LayerDecayOptimWrapperConstructor
from .runner import CheckedRunner

__all__ = ['AutocastOptimWrapper', 'CheckedRunner', 'CheckpointFitHook', 'ExactResumeHook',
           'LayerDecayOptimWrapperConstructor']
