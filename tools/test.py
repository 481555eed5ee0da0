"""Tests (and evaluates) a segmentor or a detector checkpoint, as mmseg's and mmdet's test.py do;
the metrics (mIoU, or bbox/segm AP) are logged, and saved as JSON in the work dir."""
import argparse
import os.path as osp
import sys

from mmssm.apis import build_runner, load_config, parse_args


def show_and_save(cfg, args):
    """Makes the test run paint its predictions (into ``--show-dir``, or on screen with
    ``--show``) and dump them to ``--out``."""
    segmentation = cfg.default_scope == 'mmseg'
    if args.show or args.show_dir:
        visualization = cfg.default_hooks.visualization
        visualization.draw = True
        if args.show:
            visualization.update(show=True, wait_time=args.wait_time)
        if args.show_dir and segmentation:
            # SegVisualizationHook saves through the visualizer's backends
            cfg.visualizer.save_dir = args.show_dir
        elif args.show_dir:
            # DetVisualizationHook writes the files itself, relative paths under work_dir/<time>/
            visualization.test_out_dir = osp.abspath(args.show_dir)
    if args.out and segmentation:
        cfg.test_evaluator.output_dir = args.out
    elif args.out:
        cfg.test_evaluator = [cfg.test_evaluator,
                              dict(type='DumpDetResults', out_file_path=args.out)]


def test_time_augmentation(cfg):
    """The config's tta_model around its model, on its tta_pipeline."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        sys.exit(f'error: --tta: the config has no {" and no ".join(missing)}; the instance '
                 f"segmentation configs have none, as mmdet's DetTTAModel merges boxes but not "
                 f'masks (an mmdet limitation): test them without --tta')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = dict(cfg.tta_model, module=cfg.model)


def main():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor or a detector')
    parser.add_argument('config', help='test config file path (or mmssm::NAME.py)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--show', action='store_true', help='show the predictions in a window')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each image is shown with --show')
    parser.add_argument('--show-dir', help='save the images painted with the predictions here')
    parser.add_argument('--out', help='save the predictions: a folder of label maps for '
                        'segmentation, a .pkl file for detection')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (the config's tta_model and tta_pipeline)")
    args = parse_args(parser)
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    show_and_save(cfg, args)
    if args.tta:
        test_time_augmentation(cfg)
    build_runner(cfg).test()


if __name__ == '__main__':
    main()
