"""mmssm: state-space vision backbones for mmseg and mmdet. Importing it registers everything."""
from . import checkpoints, datasets, engine, models  # noqa: F401

__version__ = '0.1.0'
