from . import atomic_files  # noqa: F401 (makes mmengine's local writes atomic)
from .autocast import AutocastOptimWrapper
from .checkpoint_fit import CheckpointFitHook
from .exact_resume import ExactResumeHook
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'CheckpointFitHook', 'ExactResumeHook',
           'LayerDecayOptimWrapperConstructor']
