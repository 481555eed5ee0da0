"""Augmentation draws that depend only on (seed, rank, place of the sample in the sampler's stream).

mmengine seeds each data-loader worker once, so an augmentation's draws depend on how many samples
that worker has already processed. A resumed run skips the samples it has trained on without
loading them, its workers start afresh, and every later draw differs from the uninterrupted run.
Here the samplers tag each index with its position in the rank's stream, and the dataset seeds
Python's, NumPy's and torch's global generators from (seed, rank, position) around each sample,
restoring them after, so the draws are the same with any number of workers, after a resume, and
the main process's generators (which the model uses when there are no workers) are left alone.
The dataset configs' training loaders name them (configs/_base_/datasets/).
"""
import contextlib
import functools
import random

import numpy as np
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmengine.registry import DATA_SAMPLERS


class PositionedIndex(int):
    """A dataset index that knows its position in the sampler's stream."""

    def __new__(cls, index, position):
        obj = super().__new__(cls, index)
        obj.position = position
        return obj

    def __reduce__(self):
        return PositionedIndex, (int(self), self.position)


@contextlib.contextmanager
def seeded_rngs(*entropy):
    """Seeds random, numpy.random and torch (CPU) from ``entropy``; restores them on exit."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    seeds = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2, np.uint64)
    random.seed(int(seeds[0]))
    np.random.seed(int(seeds[0]) % 2**32)
    torch.manual_seed(int(seeds[1]) % 2**63)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _seeded_getitems(dataset, seed, rank, indices):
    """``dataset[i]`` for each index of a batch, each seeded from its stream position. torch's
    fetcher calls a dataset's ``__getitems__`` with the batch's indices when it has one."""
    samples = []
    for index in indices:
        position = getattr(index, 'position', None)
        if position is None:
            samples.append(dataset[index])
            continue
        with seeded_rngs(seed, rank, position):
            samples.append(dataset[int(index)])
    return samples


class _PositionedMixin:
    """Gives the dataset its seeded ``__getitems__`` (an instance attribute, so the dataset's
    class and config stay as they are)."""

    def _seed_dataset(self):
        self.dataset.__getitems__ = functools.partial(_seeded_getitems, self.dataset, self.seed,
                                                      self.rank)


@DATA_SAMPLERS.register_module()
class SeededInfiniteSampler(_PositionedMixin, InfiniteSampler):
    """mmengine's InfiniteSampler (same indices, same ``skip`` for resuming), with each sample's
    augmentation seeded from its position in the stream."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._position = 0
        self._seed_dataset()

    def __iter__(self):
        for index in self.indices:
            self._position += 1
            yield PositionedIndex(index, self._position - 1)

    def skip(self, num_samples):
        super().skip(num_samples)
        self._position = num_samples


@DATA_SAMPLERS.register_module()
class SeededDefaultSampler(_PositionedMixin, DefaultSampler):
    """mmengine's DefaultSampler (epoch by epoch), with each sample's augmentation seeded from its
    position ``epoch * samples per epoch + i``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seed_dataset()

    def __iter__(self):
        start = self.epoch * self.num_samples
        for i, index in enumerate(super().__iter__()):
            yield PositionedIndex(index, start + i)
