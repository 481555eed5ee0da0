"""Loading official checkpoints of each backbone family, with strict key checks."""
from .loading import load_official_checkpoint, read_state_dict
from .vim import adapt_vim_state_dict, convert_official_vim, is_official_vim

__all__ = ['load_official_checkpoint', 'read_state_dict', 'convert_official_vim',
           'adapt_vim_state_dict', 'is_official_vim']
