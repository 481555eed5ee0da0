"""mmssm: state-space vision backbones for mmseg and mmdet. Importing it registers everything and
switches on weights-only checkpoint reading for the process (:func:`secure_checkpoint_loading`;
``MMSSM_SECURE_LOADING=0`` in the environment leaves mmengine's loaders as they are)."""
import os

from . import checkpoints, datasets, engine, models  # noqa: F401
from .checkpoints.reading import SECURE_LOADING_ENV, secure_checkpoint_loading

__version__ = '0.1.0'
__all__ = ['secure_checkpoint_loading']

# anything but an explicit "off" keeps the safe default
if os.environ.get(SECURE_LOADING_ENV, '').strip().lower() not in ('0', 'false', 'no', 'off'):
    secure_checkpoint_loading()
