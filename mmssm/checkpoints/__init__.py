"""Reading checkpoint files weights-only, and loading official checkpoints of each backbone
family with strict key checks."""
from .loading import load_official_checkpoint, read_state_dict
from .reading import TRUST_ENV, CheckpointError, add_trust_option, read_checkpoint
from .vim import adapt_vim_state_dict, convert_official_vim, is_official_vim

__all__ = ['CheckpointError', 'TRUST_ENV', 'add_trust_option', 'read_checkpoint',
           'load_official_checkpoint', 'read_state_dict', 'convert_official_vim',
           'adapt_vim_state_dict', 'is_official_vim']
