"""Speed and memory of a config's model beside timm baselines, measured in the same run.

For each --shape and mode: images per second (median of --repeats timed calls after --warmup,
device synchronised around each) and peak memory above what the model already holds, for the
config's model and for each --baseline (timm's DeiT-Ti/S with fused SDPA attention, Swin-T,
ConvNeXt-T, built without downloading weights; in whole-model mode they get the config's heads),
every figure with its ratio to the first baseline. Writes a Markdown table (also printed), a JSON
file with every repeat, and a plot (img/s and memory against resolution).

    python tools/analysis_tools/benchmark.py configs/upernet_vim-ti_ade20k.py --backbone-only \\
        --shape 512 1024 1248 --batch 16 --amp bf16 --baseline deit-ti deit-ti-eager --mode infer
    python tools/analysis_tools/benchmark.py configs/upernet_vim-s_ade20k.py --shape 512 1024 \\
        --batch 4 --amp bf16 --baseline deit-s --mode train
    python tools/analysis_tools/benchmark.py configs/upernet_vim-ti_ade20k.py --backbone-only \\
        --shape 224 512 --mode --saved-activations     # per-block saved activations only
    TRITON_INTERPRET=1 python tools/analysis_tools/benchmark.py configs/upernet_vim-ti_ade20k.py \\
        --shape 64 --mode --saved-activations --device cpu --scan-backend triton
"""
import argparse
import os
import os.path as osp
import sys
import time
from contextlib import nullcontext

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, init_default_scope
from mmengine.utils import mkdir_or_exist

import mmssm  # noqa: F401
from mmssm.benchmark import Settings, run
from mmssm.benchmark.bench import AMP_DTYPES, MODES, prepare_config
from mmssm.benchmark.baselines import BASELINES
from mmssm.benchmark.report import plot, table, write_json
from mmssm.benchmark.saved import block_activations, find_blocks, saved_table, with_budgets
from mmssm.benchmark.inputs import images
from mmssm_kernels.triton_scan import wide_interpreter_tiles


def parse_shape(text):
    """'512' -> (512, 512); '512x1024' -> (512, 1024)."""
    try:
        sides = [int(s) for s in text.lower().split('x')]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: give a side (512) or HxW (512x1024)")
    return (sides[0], sides[-1])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--backbone-only', action='store_true',
                        help='measure the backbones alone (feature extraction; training: '
                        'forward, backward of the mean of every output, optimizer step)')
    parser.add_argument('--shape', type=parse_shape, nargs='+', default=[(512, 512)],
                        help='image sizes: a side (square) or HxW, several for a sweep')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--mode', nargs='*', choices=MODES, default=list(MODES),
                        help='infer (no-grad forward / test_step), train (forward, backward, '
                        'optimizer step); give none to only measure --saved-activations')
    parser.add_argument('--amp', choices=sorted(AMP_DTYPES),
                        help='autocast dtype (training on the CPU: bf16 only)')
    parser.add_argument('--compile', action='store_true', help='torch.compile the backbones')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--baseline', nargs='+', default=['deit-ti'],
                        help=f'{", ".join(BASELINES)} or timm:<name>; ratios are to the first')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory step')
    parser.add_argument('--saved-activations', action='store_true',
                        help="bytes each of the config's backbone blocks saves for the backward, "
                        'against the official fused implementation where one is known')
    parser.add_argument('--scan-backend', choices=('triton', 'torch'),
                        help="the backbone's scan path (its scan_backend); default: Triton on "
                        'CUDA, PyTorch on the CPU. Triton on the CPU runs in its interpreter '
                        '(TRITON_INTERPRET=1): slow, for small shapes')
    parser.add_argument('--out', help='output path without extension (default: '
                        'work_dirs/benchmark/<config>/<time>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


class Progress:
    """One status line on stderr: [done/total] what runs now, time so far."""

    def __init__(self):
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, done, total, text):
        line = f'[{done}/{total}] {text} ({time.perf_counter() - self.start:.0f} s)'
        print(f'\r{line:<70}' if self.tty else line, end='' if self.tty else '\n',
              file=sys.stderr, flush=True)
        if self.tty and done == total:
            print(file=sys.stderr)


def saved_activations(cfg, settings):
    """Per-block saved bytes of the config's backbone at each shape, with budgets."""
    init_default_scope(cfg.default_scope)
    backbone = MODELS.build(prepare_config(cfg).backbone).to(settings.device)
    blocks = find_blocks(backbone)
    dtype = AMP_DTYPES.get(settings.amp)
    act_bytes = 4 if dtype is None else torch.finfo(dtype).bits // 8
    out = {}
    # the Triton path in its interpreter: the widest channel tiles, some 20x fewer interpreted
    # programs (what the scan keeps does not depend on the tiles)
    interpreted = (cfg.model.backbone.get('scan_backend') == 'triton'
                   and not settings.device.startswith('cuda'))
    with wide_interpreter_tiles() if interpreted else nullcontext():
        for shape in settings.shapes:
            # per image figures come from a batch and its double; one image saves differently
            x = images(max(settings.batch, 2), shape, torch.device(settings.device))
            out[f'{shape[0]}x{shape[1]}'] = with_budgets(
                block_activations(backbone, x, dtype, blocks), blocks, act_bytes)
    return out


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.scan_backend:
        if (args.scan_backend == 'triton' and not args.device.startswith('cuda')
                and os.environ.get('TRITON_INTERPRET') != '1'):
            sys.exit('error: --scan-backend triton on the CPU runs in Triton\'s interpreter: '
                     'set TRITON_INTERPRET=1 in the environment')
        cfg.model.backbone.scan_backend = args.scan_backend
    settings = Settings(
        shapes=args.shape, batch=args.batch, modes=tuple(args.mode), amp=args.amp,
        compile=args.compile, channels_last=args.channels_last, device=args.device,
        warmup=args.warmup, repeats=args.repeats, backbone_only=args.backbone_only,
        memory=not args.no_memory)
    stem = osp.splitext(osp.basename(args.config))[0]
    out = args.out or osp.join('work_dirs', 'benchmark', stem, time.strftime('%Y%m%d_%H%M%S'))
    mkdir_or_exist(osp.dirname(osp.abspath(out)))
    command = ' '.join(['python', *sys.argv]) if argv is None else ' '.join(argv)
    reference = args.baseline[0]
    try:
        results = run(cfg, args.baseline, settings, Progress()) if settings.modes else []
        saved = saved_activations(cfg, settings) if args.saved_activations else None
    except ValueError as error:
        sys.exit(f'error: {error}')
    scope = ('backbone blocks' if not settings.modes else
             'backbones' if args.backbone_only else 'whole models')
    scan = args.scan_backend or ('triton' if args.device.startswith('cuda') else 'torch')
    title = (f'{stem} ({scope}), batch {args.batch}, {args.amp or "fp32"}, {args.device}, '
             f'{scan} scan'
             f'{", compiled" if args.compile else ""}{", channels-last" if args.channels_last else ""}')
    print(f'\n{title}')
    sections = []
    if results:
        sections.append(table(results, reference))
        plot(out + '.png', results, title)
    if saved is not None:
        sections.append(saved_table(saved))
    text = '\n\n'.join(sections)
    print(text)
    with open(out + '.md', 'w') as f:
        f.write(f'{title}\n\n`{command}`\n\n{text}\n')
    write_json(out + '.json', results, settings, command, args.config, reference, saved)
    print(f'\nwritten: {out}.json, {out}.md' + (f', {out}.png' if results else ''))


if __name__ == '__main__':
    main()
