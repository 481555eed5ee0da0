"""Exports a config's model with its checkpoint to ONNX and checks the file in ONNX Runtime.

Segmentation configs export whole (image in, per-pixel class logits out); detection configs export
the backbone and neck (image in, the FPN levels out). The selective scan is written as a standard
ONNX ``Scan``: the file needs nothing but an ONNX runtime.

    python tools/deployment/pytorch2onnx.py configs/upernet_vim-ti_ade20k.py CKPT --shape 512 512 --out vim.onnx
    python tools/deployment/pytorch2onnx.py CONFIG CKPT --shape 512 512 --dynamic --out model.onnx
"""
import argparse
import statistics
import sys
import time

import torch

from mmssm.checkpoints import CheckpointError, add_trust_option
from mmssm.deployment.export import (MIN_OPSET, ExportError, build_model, check_dynamic,
                                     check_request, compare,
                                     example_image, export, exportable, load_config, metadata,
                                     ort_session)


def parse_args():
    parser = argparse.ArgumentParser(description='Export a segmentor (whole) or a detector '
                                     '(backbone + neck) to ONNX')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
                        help='input size to export (and verify) at')
    parser.add_argument('--dynamic', action='store_true',
                        help='batch, height and width dynamic in the file')
    parser.add_argument('--opset', type=int, default=MIN_OPSET)
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--no-verify', dest='verify', action='store_false',
                        help='skip the ONNX Runtime vs PyTorch check')
    parser.add_argument('--benchmark', type=int, default=0, metavar='RUNS',
                        help='then time ONNX Runtime and PyTorch on the CPU at the export size, '
                        'batch 1, RUNS times each after a warm-up, and print the medians')
    add_trust_option(parser)
    return parser.parse_args()


def verify(module, path, shape, dynamic, segmentation):
    """Prints ONNX Runtime vs PyTorch on the export size and, for a dynamic file, at two other
    sizes (one not a multiple of 32) and batch 2."""
    session = ort_session(path)
    H, W = shape
    sizes = [(1, (H, W))] + ([(2, (H + 32, W - 32 if W > 64 else W + 64)), (1, (H + 13, W + 7))]
                             if dynamic else [])
    worst = 0.
    for i, (batch, size) in enumerate(sizes):
        diff, scale, agree = compare(module, session, example_image(batch, size, seed=i), segmentation)
        worst = max(worst, diff)
        line = (f'verify {batch}x3x{size[0]}x{size[1]}: max |ONNX Runtime - PyTorch| = {diff:.3g} '
                f'(outputs up to {scale:.3g})')
        if agree is not None:
            line += f', pixels whose class agrees: {100 * agree:.3f}%'
        print(line)
    return worst


def benchmark(module, path, shape, runs):
    session = ort_session(path)
    image = example_image(1, shape)
    feeds = {session.get_inputs()[0].name: image.numpy()}
    times = {}
    for name, run in (('PyTorch', lambda: module(image)),
                      ('ONNX Runtime', lambda: session.run(None, feeds))):
        run()  # warm-up
        times[name] = []
        for _ in range(runs):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    print(f'benchmark 1x3x{shape[0]}x{shape[1]}, {torch.get_num_threads()} threads, median of '
          f'{runs}: ' + ', '.join(f'{name} {statistics.median(t):.3f} s'
                                  for name, t in times.items()))


def main():
    args = parse_args()
    try:
        check_request(args.shape, args.opset)
        cfg = load_config(args.config)
        model = build_model(cfg, args.checkpoint)
        if args.dynamic:
            check_dynamic(model)
        module, outputs = exportable(cfg, model)
    except (ExportError, CheckpointError) as error:
        sys.exit(f'error: {error}')
    start = time.time()
    size = export(module, outputs, args.shape, args.out, args.opset, args.dynamic,
                  metadata(cfg, args.config, args.shape, args.dynamic))
    print(f'wrote {args.out} ({size / 2**20:.1f} MiB, opset {args.opset}, '
          f'{"dynamic batch/height/width" if args.dynamic else "static " + "x".join(map(str, args.shape))}'
          f', outputs {", ".join(outputs)}) in {time.time() - start:.0f} s')
    if args.verify:
        verify(module, args.out, args.shape, args.dynamic, cfg.default_scope == 'mmseg')
    if args.benchmark:
        benchmark(module, args.out, args.shape, args.benchmark)


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    main()
