"""Data sets for the demo and the tests (``mmssm.datasets.synthetic``, also a CLI), and the samplers
that make augmentation independent of workers and resumes."""
from .checks import CheckSegAnnotation, DataError
from .seeded_sampling import SeededDefaultSampler, SeededInfiniteSampler

__all__ = ['CheckSegAnnotation', 'DataError', 'SeededDefaultSampler', 'SeededInfiniteSampler']
