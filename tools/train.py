"""Trains a segmentor or a detector from its config, as mmseg's and mmdet's train.py do: what the
run does (checks, hooks, samplers, checkpoint writes) is stated in the config and its Runner."""
import argparse
import sys

import torch

from mmssm.apis import build_runner, load_config, parse_args


def main():
    parser = argparse.ArgumentParser(description='Train a segmentor or a detector')
    parser.add_argument('config', help='train config file path (or mmssm::NAME.py)')
    parser.add_argument(
        '--resume', nargs='?', const='auto',
        help='resume from this checkpoint, or, without a path, from the latest one in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help="scale the learning rate to the batch size (the config's auto_scale_lr)")
    args = parse_args(parser)
    cfg = load_config(args)

    if args.amp:
        if not torch.cuda.is_available():
            sys.exit('error: --amp (mixed precision with a loss scaler) needs a GPU, and none '
                     'is visible: train without --amp on the CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            sys.exit('error: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume:
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
