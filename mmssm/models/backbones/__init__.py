from .base import SSMBackbone
from .mambavision import MambaVision
from .vim import VisionMamba

__all__ = ['SSMBackbone', 'MambaVision', 'VisionMamba']
