from .base import SSMBackbone
from .mambavision import MambaVision
from .vim import VisionMamba
from .vmamba import VMamba

__all__ = ['SSMBackbone', 'MambaVision', 'VisionMamba', 'VMamba']
