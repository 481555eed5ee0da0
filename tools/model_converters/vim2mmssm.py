"""Convert an official Vim checkpoint (hustvl/Vim release, {'model': state_dict}) to mmssm's
backbone layout, saved as {'state_dict': ...} with keys under 'backbone.' so that it loads both as
``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')`` and with mmengine's
``load_checkpoint``. Loading the official file directly works too; this saves the conversion.

    python tools/model_converters/vim2mmssm.py vim_t_midclstok_76p1acc.pth checkpoints/vim-ti.pth
"""
import argparse
from pathlib import Path

import torch

from mmssm.checkpoints import (CheckpointError, add_trust_option, convert_official_vim,
                               is_official_vim, read_state_dict)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official Vim checkpoint')
    parser.add_argument('dst', help='output path')
    add_trust_option(parser)
    args = parser.parse_args(argv)
    try:
        state_dict = read_state_dict(args.src)
    except CheckpointError as error:
        raise SystemExit(f'error: {error}') from None
    if not is_official_vim(state_dict):
        raise SystemExit(f'{args.src}: no patch_embed.proj.weight key, so not an official Vim '
                         f'checkpoint (first keys: {list(state_dict)[:5]})')
    converted = {f'backbone.{k}': v for k, v in convert_official_vim(state_dict).items()}
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': converted}, args.dst)
    print(f'{args.src} -> {args.dst}: {len(converted)} tensors')


if __name__ == '__main__':
    main()
