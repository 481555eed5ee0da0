"""Reading checkpoint files weights-only, writing them whole, and strict loading; each family's key
names live beside its model."""
from .loading import backbone_weights, describe_fit, load_state_dict_strict, read_state_dict
from .reading import TRUST_ENV, CheckpointError, add_trust_option, read_checkpoint
from .writing import AtomicCheckpointBackend, CheckpointWriteError

__all__ = ['AtomicCheckpointBackend', 'CheckpointError', 'CheckpointWriteError', 'TRUST_ENV',
           'add_trust_option', 'read_checkpoint', 'read_state_dict', 'backbone_weights',
           'describe_fit', 'load_state_dict_strict']
