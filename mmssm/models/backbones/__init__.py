from .base import SSMBackbone
from .vim import VisionMamba

__all__ = ['SSMBackbone', 'VisionMamba']
