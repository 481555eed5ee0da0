"""Reading checkpoint files weights-only, and strict loading; each family's key names live beside
its model."""
from .loading import backbone_weights, describe_fit, load_state_dict_strict, read_state_dict
from .reading import TRUST_ENV, CheckpointError, add_trust_option, read_checkpoint

__all__ = ['CheckpointError', 'TRUST_ENV', 'add_trust_option', 'read_checkpoint',
           'read_state_dict', 'backbone_weights', 'describe_fit', 'load_state_dict_strict']
