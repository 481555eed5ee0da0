"""Convert a VMamba release checkpoint (MzeroMiko/VMamba, {'model': state_dict}, any of its
layouts: the final models, the first version's names, the single-file model's grouped layers) to
mmssm's backbone layout, saved as {'state_dict': ...} with keys under 'backbone.' so that it loads
both as ``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')`` and with mmengine's
``load_checkpoint``. Loading the release file directly works too; this saves the conversion.

    python tools/model_converters/vmamba2mmssm.py vssm1_tiny_0230s_ckpt_epoch_264.pth \
        checkpoints/vmamba-t.pth
"""
import argparse
from pathlib import Path

import torch

from mmssm.checkpoints import read_state_dict
from mmssm.models.backbones.vmamba import convert_official


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='VMamba release checkpoint')
    parser.add_argument('dst', help='output path')
    args = parser.parse_args(argv)
    state_dict = convert_official(read_state_dict(args.src))
    if not any('.op.A_logs' in k for k in state_dict):
        raise SystemExit(f'{args.src}: no layers.*.op.A_logs key, so not a VMamba checkpoint '
                         f'(first keys: {list(state_dict)[:5]})')
    converted = {f'backbone.{k}': v for k, v in state_dict.items()}
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': converted}, args.dst)
    print(f'{args.src} -> {args.dst}: {len(converted)} tensors')


if __name__ == '__main__':
    main()
