from .autocast import AutocastOptimWrapper
from .checkpoint_fit import CheckpointFitHook
from .exact_resume import ExactResumeHook
from .layer_decay import LayerDecayOptimWrapperConstructor
from .loops import CheckedTestLoop
from .runner import CheckedRunner

__all__ = ['AutocastOptimWrapper', 'CheckedRunner', 'CheckedTestLoop', 'CheckpointFitHook',
           'ExactResumeHook', 'LayerDecayOptimWrapperConstructor']
