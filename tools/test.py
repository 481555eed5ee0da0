"""Tests (and evaluates) a segmentor or a detector checkpoint; the metrics (mIoU, or bbox/segm AP)
are logged, and saved as JSON in the work dir."""
import argparse
import os.path as osp

from mmssm.apis import build_runner, load_config, parse_args, task_of, user_errors_reported


def save_predictions(cfg, show_dir=None, out=None):
    """Makes the test run paint its predictions into ``show_dir`` and dump them to ``out``."""
    segmentation = task_of(cfg) == 'mmseg'
    if show_dir:
        cfg.default_hooks.visualization.draw = True
        if segmentation:
            # SegVisualizationHook saves through the visualizer's backends
            cfg.visualizer.save_dir = show_dir
        else:
            # DetVisualizationHook writes the files itself, relative paths under work_dir/<time>/
            cfg.default_hooks.visualization.test_out_dir = osp.abspath(show_dir)
    if out:
        if segmentation:
            cfg.test_evaluator.output_dir = out
        else:
            dump = dict(type='DumpDetResults', out_file_path=out)
            cfg.test_evaluator = [cfg.test_evaluator, dump]


def main():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor or a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--show-dir', help='save the images painted with the predictions here')
    parser.add_argument('--out', help='save the predictions: a folder of label maps for '
                        'segmentation, a .pkl file for detection')
    args = parse_args(parser)
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    save_predictions(cfg, args.show_dir, args.out)
    with user_errors_reported():
        build_runner(cfg, ['test_dataloader']).test()


if __name__ == '__main__':
    main()
