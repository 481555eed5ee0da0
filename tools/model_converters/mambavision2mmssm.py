"""Convert an official MambaVision checkpoint (NVIDIA's release ``mambavision_*.pth.tar``, or a
dense model trained with the official mmseg/mmdet code) to mmssm's backbone layout, saved as
{'state_dict': ...} with keys under 'backbone.' so that it loads both as
``init_cfg=dict(type='Pretrained', checkpoint=OUT)`` and with mmengine's ``load_checkpoint``.
Loading the official file directly works too; this saves the conversion.

    python tools/model_converters/mambavision2mmssm.py mambavision_tiny_1k.pth.tar \
        checkpoints/mambavision-t.pth
"""
import argparse
from pathlib import Path

import torch

from mmssm.checkpoints import read_state_dict
from mmssm.models.backbones.mambavision import convert_official


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official MambaVision checkpoint')
    parser.add_argument('dst', help='output path')
    args = parser.parse_args(argv)
    converted = convert_official(read_state_dict(args.src))
    if not any(k.startswith('patch_embed.conv_down.') for k in converted):
        raise SystemExit(f'{args.src}: no patch_embed.conv_down weights, so not a MambaVision '
                         f'checkpoint (first keys: {list(converted)[:5]})')
    converted = {f'backbone.{k}': v for k, v in converted.items()}
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': converted}, args.dst)
    print(f'{args.src} -> {args.dst}: {len(converted)} tensors')


if __name__ == '__main__':
    main()
