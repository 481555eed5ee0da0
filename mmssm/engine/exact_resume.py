"""Makes a resumed run continue exactly as the uninterrupted one would have (with the samplers of
``mmssm.datasets.seeded_sampling``, which make augmentation a function of the sample's position).

What is left is the main process's random state, which the model draws from (dropout, drop path,
RoI sampling): it is saved with each checkpoint and restored when training resumes from it. Data
loaders get generators of their own, since creating a loader's iterator draws its workers' base
seed from the global generator, and a resumed run creates its iterators at other times.
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def capture_rng():
    """The main process's random states, in types a weights-only load accepts."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(python=random.getstate(), torch=torch.get_rng_state(),
                 numpy=(name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state):
    random.setstate(state['python'])
    torch.set_rng_state(state['torch'])
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    # one state per visible GPU: on another machine's GPUs they do not carry over
    if torch.cuda.is_available() and len(state.get('cuda', ())) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class ExactResumeHook(Hook):
    priority = 'VERY_HIGH'

    def __init__(self):
        self._loaded = None

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['meta']['rng'] = capture_rng()

    def after_load_checkpoint(self, runner, checkpoint):
        self._loaded = checkpoint.get('meta') or {}

    def before_train(self, runner):
        for offset, loop in enumerate((runner.train_loop, runner.val_loop)):
            if loop is not None:
                loop.dataloader.generator = torch.Generator().manual_seed(runner.seed + offset)
        # only a resume sets the loop to the checkpoint's iteration; load_from starts at 0
        if self._loaded and 'rng' in self._loaded and self._loaded.get('iter') == runner.iter:
            restore_rng(self._loaded['rng'])
        self._loaded = None
