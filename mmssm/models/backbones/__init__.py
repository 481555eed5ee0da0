from .base import SSMBackbone
from .vim import VisionMamba
from .vmamba import VMamba

__all__ = ['SSMBackbone', 'VisionMamba', 'VMamba']
