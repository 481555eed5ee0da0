from .blocks import PreNormBlock
from .ssm import SelectiveSSM

__all__ = ['SelectiveSSM', 'PreNormBlock']
