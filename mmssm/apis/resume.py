"""Which checkpoint ``--resume`` without a path continues from."""
import glob
import logging
import os.path as osp
import re

from mmengine.logging import print_log

from mmssm.checkpoints import CheckpointError, read_checkpoint


def _number(path):
    match = re.search(r'_(\d+)\.pth$', path)
    return int(match.group(1)) if match else -1


def resume_checkpoint(work_dir):
    """The newest readable checkpoint in ``work_dir``: the one its ``last_checkpoint`` names, else
    the other ``iter_*.pth`` / ``epoch_*.pth``, newest first. One that cannot be read (cut short
    by a kill while saving, ...) is named and skipped; none at all is an error, not a silent
    start from scratch."""
    candidates = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            candidates.append(f.read().strip())
    numbered = glob.glob(osp.join(work_dir, 'iter_*.pth')) + glob.glob(
        osp.join(work_dir, 'epoch_*.pth'))
    candidates += sorted(numbered, key=_number, reverse=True)
    skipped = []
    for path in dict.fromkeys(candidates):
        try:
            read_checkpoint(path)
            return path
        except (CheckpointError, FileNotFoundError) as error:
            skipped.append(path)
            print_log(f'{error}; resuming from the previous checkpoint instead',
                      logger='current', level=logging.WARNING)
    if skipped:
        raise CheckpointError(f'no readable checkpoint to resume from in {work_dir} (tried '
                              f'{", ".join(skipped)}): train from the start without --resume')
    raise CheckpointError(f'--resume: no checkpoint to resume from in {work_dir} (no '
                          f'last_checkpoint, iter_*.pth or epoch_*.pth): give its path '
                          f'(--resume PATH, or --work-dir of the run), or train without --resume')
