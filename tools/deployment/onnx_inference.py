"""Runs an exported segmentor (tools/deployment/pytorch2onnx.py) in ONNX Runtime on the CPU and
paints its predictions as mmseg's inferencer does.

    python tools/deployment/onnx_inference.py model.onnx img1.jpg img2.jpg ... --out-dir DIR

Each image goes through the config's test resize (kept in the file: a static file takes its own
size), the file, and back to the image's size; DIR/vis/<image> is the image painted with the
classes (opacity 0.8, class names on), DIR/pred/<image stem>_pred.png the label map.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description='Segment images with an exported .onnx model')
    parser.add_argument('model', help='.onnx file written by pytorch2onnx.py')
    parser.add_argument('images', nargs='+')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--opacity', type=float, default=0.8)
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime threads (0: all)')
    return parser.parse_args()


class OnnxSegmentor:
    """An exported segmentor: image (H, W, 3) BGR uint8 -> class logits at the image's size."""

    def __init__(self, path, threads=0):
        import onnx
        import onnxruntime as ort
        if not osp.isfile(path):
            raise ValueError(f'model file not found: {path}')
        meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        task = meta.get('mmssm.task')
        if task != 'segmentation':
            raise ValueError(
                f'{path} is not a segmentor exported by pytorch2onnx.py (its task is {task!r}); '
                f'a detector file holds backbone + neck features, see the README, Deployment')
        self.classes = json.loads(meta['mmssm.classes'])
        self.palette = json.loads(meta['mmssm.palette'])
        self.resize = json.loads(meta['mmssm.test_resize'])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self.input = self.session.get_inputs()[0]
        H, W = self.input.shape[2:]
        self.static_size = (H, W) if isinstance(H, int) and isinstance(W, int) else None

    def prepare(self, image):
        """The test pipeline's resize; a static file's own size otherwise."""
        import mmcv
        if self.static_size:
            H, W = self.static_size
            return mmcv.imresize(image, (W, H))
        if not self.resize:
            return image
        scale = tuple(self.resize['scale'])
        if self.resize.get('keep_ratio', True):
            return mmcv.imrescale(image, scale)
        return mmcv.imresize(image, scale)

    def __call__(self, image):
        import torch
        import torch.nn.functional as F
        x = self.prepare(image).transpose(2, 0, 1)[None].astype(np.float32)
        logits = torch.from_numpy(self.session.run(None, {self.input.name: x})[0])
        # back to the image's size as mmseg's postprocess_result does
        return F.interpolate(logits, size=image.shape[:2], mode='bilinear',
                             align_corners=False)[0]


def main():
    args = parse_args()
    import mmcv
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer
    from rich.progress import track

    try:
        model = OnnxSegmentor(args.model, args.threads)
    except ValueError as error:
        sys.exit(f'error: {error}')
    missing = [p for p in args.images if not osp.isfile(p)]
    if missing:
        sys.exit(f'error: image(s) not found: {", ".join(missing[:5])}')
    visualizer = SegLocalVisualizer(alpha=args.opacity)
    # set as mmseg's inferencer does (the constructor's classes/palette arguments reach
    # set_dataset_meta swapped)
    visualizer.dataset_meta = dict(classes=model.classes, palette=model.palette)
    for sub in ('vis', 'pred'):
        os.makedirs(osp.join(args.out_dir, sub), exist_ok=True)
    for path in track(args.images, description='ONNX Runtime'):
        image = mmcv.imread(path)
        if image is None:
            sys.exit(f'error: cannot read image {path}')
        pred = model(image).argmax(0)
        sample = SegDataSample(pred_sem_seg=PixelData(data=pred[None]))
        name = osp.basename(path)
        visualizer.add_datasample(name, image[..., ::-1], sample, draw_gt=False, draw_pred=True,
                                  out_file=osp.join(args.out_dir, 'vis', name), with_labels=True)
        mmcv.imwrite(pred.numpy().astype(np.uint8),
                     osp.join(args.out_dir, 'pred', osp.splitext(name)[0] + '_pred.png'))
    print(f'{len(args.images)} image(s) painted in {osp.join(args.out_dir, "vis")}, label maps in '
          f'{osp.join(args.out_dir, "pred")}')


if __name__ == '__main__':
    main()
