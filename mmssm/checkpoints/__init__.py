"""Reading checkpoint files and strict loading; each family's key names live beside its model."""
from .loading import load_state_dict_strict, read_state_dict

__all__ = ['read_state_dict', 'load_state_dict_strict']
