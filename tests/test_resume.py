"""Resuming: a resumed run is bit-identical to an uninterrupted one (augmentation draws included,
with data-loader workers), and ``--resume`` skips a checkpoint that cannot be read."""
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmssm.apis import resume_checkpoint
from mmssm.checkpoints import CheckpointError, read_checkpoint
from mmssm.datasets import SeededDefaultSampler, SeededInfiniteSampler
from test_tools_e2e import IN_PROCESS_DATA, REPO, SEG_CONFIG, run


class Augmented:
    """A data set whose samples are random draws, as augmentations are."""

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return index, np.random.rand(), torch.rand(()).item(), float(np.random.randint(1000))


def stream(num_workers, skip=0, count=8):
    sampler = SeededInfiniteSampler(Augmented(), seed=3)
    sampler.skip(skip)
    # a generator of its own, as ExactResumeHook gives the Runner's loaders
    loader = DataLoader(sampler.dataset, batch_size=2, sampler=sampler, num_workers=num_workers,
                        collate_fn=list, generator=torch.Generator())
    batches = iter(loader)
    return [next(batches) for _ in range(count)]


def test_augmentation_draws_depend_on_position_only():
    uninterrupted = stream(num_workers=0)
    assert stream(num_workers=2) == uninterrupted
    assert stream(num_workers=2, skip=6, count=5) == uninterrupted[3:]
    # and the draws differ from sample to sample
    assert len({draw for batch in uninterrupted for _, draw, _, _ in batch}) == 16


def epochs(first, last, num_workers):
    """Epochs ``first..last`` of an epoch-based run (a resumed one starts at ``first``)."""
    sampler = SeededDefaultSampler(Augmented(), shuffle=True, seed=3)
    loader = DataLoader(sampler.dataset, batch_size=2, sampler=sampler, num_workers=num_workers,
                        collate_fn=list, generator=torch.Generator(), persistent_workers=False)
    out = []
    for epoch in range(first, last + 1):
        sampler.set_epoch(epoch)  # what DistSamplerSeedHook does
        out.append(list(loader))
    return out


def test_epoch_based_draws_depend_on_position_only():
    uninterrupted = epochs(0, 2, num_workers=0)
    assert epochs(0, 2, num_workers=2) == uninterrupted
    assert epochs(2, 2, num_workers=2) == uninterrupted[2:]
    assert uninterrupted[1] != uninterrupted[2]


def test_main_process_random_state_is_left_alone():
    torch.manual_seed(0)
    expected = torch.rand(()).item()
    torch.manual_seed(0)
    stream(num_workers=0)
    assert torch.rand(()).item() == expected


def test_random_state_survives_a_weights_only_checkpoint(tmp_path):
    import random
    from mmssm.engine.exact_resume import capture_rng, restore_rng
    torch.save({'meta': {'rng': capture_rng()}}, tmp_path / 'iter_1.pth')
    draws = random.random(), np.random.rand(), torch.rand(()).item()
    restore_rng(read_checkpoint(tmp_path / 'iter_1.pth')['meta']['rng'])
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == draws


def test_resume_skips_an_unreadable_last_checkpoint(tmp_path):
    torch.save({'meta': {'iter': 2}}, tmp_path / 'iter_2.pth')
    torch.save({'meta': {'iter': 4}}, tmp_path / 'iter_4.pth')
    (tmp_path / 'iter_4.pth').write_bytes((tmp_path / 'iter_4.pth').read_bytes()[:100])
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert resume_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')

    (tmp_path / 'iter_2.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match='no readable checkpoint to resume from in'):
        resume_checkpoint(str(tmp_path))


def test_resumed_training_is_bit_identical(tmp_path):
    """Two iterations, a checkpoint and a validation, then two more; against the same run resumed
    from its iteration-2 checkpoint. Data-loader workers, random augmentation and drop path on."""
    from mmssm.datasets.synthetic import make
    make('ade20k', str(tmp_path / 'data/synthetic_ade20k'), num_train=6, num_val=1, size=64)
    options = ['--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=2',
               'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
               'train_dataloader.num_workers=2', 'model.backbone.drop_path_rate=0.2',
               'model.backbone.arch.embed_dims=32',
               'model.neck.embed_dim=32', 'model.decode_head.in_channels=[32,32,32,32]',
               'model.decode_head.channels=32', 'model.auxiliary_head.in_channels=32',
               'model.auxiliary_head.channels=16', *IN_PROCESS_DATA[2:]]
    train = [sys.executable, REPO / 'tools/train.py', SEG_CONFIG]
    run(tmp_path, *train, '--work-dir', tmp_path / 'full', *options)
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    (resumed / 'iter_2.pth').write_bytes((tmp_path / 'full/iter_2.pth').read_bytes())
    out = run(tmp_path, *train, '--work-dir', resumed, '--resume', *options)
    assert 'resumed epoch: 0, iter: 2' in out

    full = read_checkpoint(tmp_path / 'full/iter_4.pth')
    again = read_checkpoint(resumed / 'iter_4.pth')
    assert full['state_dict'].keys() == again['state_dict'].keys()
    for key, value in full['state_dict'].items():
        assert torch.equal(value, again['state_dict'][key]), key


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    """Not a silent start from scratch."""
    with pytest.raises(CheckpointError, match=f'^--resume: no checkpoint to resume from in '
                                              f'{tmp_path} '):
        resume_checkpoint(str(tmp_path))
