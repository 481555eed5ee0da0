"""The command line every tools/model_converters/*2mmssm.py script shares: read a release
checkpoint weights-only, rename it with the family's ``convert_official`` and save it as
``{'state_dict': ...}`` under 'backbone.', so that it loads both as
``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')`` and with mmengine's
``load_checkpoint``."""
import argparse
from pathlib import Path

import torch

from .loading import read_state_dict
from .reading import CheckpointError, add_trust_option


def convert_release(doc, family, convert_official, marker, argv=None):
    """``marker``: how a key of every converted checkpoint of ``family`` starts, so that a file of
    another model stops here instead of at loading time (a converted one converts to itself)."""
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    parser.add_argument('src', help=f'official {family} checkpoint')
    parser.add_argument('dst', help='output path')
    add_trust_option(parser)
    args = parser.parse_args(argv)
    try:
        state_dict = convert_official(read_state_dict(args.src))
    except CheckpointError as error:
        raise SystemExit(f'error: {error}') from None
    if not any(k.startswith(marker) for k in state_dict):
        raise SystemExit(f'{args.src}: no {marker} weights, so not a {family} checkpoint '
                         f'(first keys: {list(state_dict)[:5]})')
    converted = {f'backbone.{k}': v for k, v in state_dict.items()}
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': converted}, args.dst)
    print(f'{args.src} -> {args.dst}: {len(converted)} tensors')
