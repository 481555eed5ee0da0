"""What is exported: a segmentor whole, a detector's backbone and neck, each from the raw image.

Both take the image as mmcv loads it (batch, 3, H, W), float32 BGR in 0..255, and do the data
preprocessor's work inside the graph (channel order, mean/std, padding to the size divisor), so
that the exported file needs nothing from OpenMMLab to run.
"""
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F


class ImageNormalizer(nn.Module):
    """The test-time part of mmengine's / mmseg's data preprocessors: BGR -> RGB, mean/std, and
    zero padding (after normalising, as they do) right and bottom to a multiple of ``divisor``."""

    def __init__(self, preprocessor, divisor):
        super().__init__()
        self.rgb = bool(preprocessor._channel_conversion)
        self.normalize = bool(preprocessor._enable_normalize)
        if self.normalize:
            self.register_buffer('mean', preprocessor.mean.detach().clone().view(1, -1, 1, 1))
            self.register_buffer('std', preprocessor.std.detach().clone().view(1, -1, 1, 1))
        self.divisor = int(divisor or 1)
        self.pad_value = float(getattr(preprocessor, 'pad_val',
                                       getattr(preprocessor, 'pad_value', 0)))

    def forward(self, image):
        x = image.flip(1) if self.rgb else image
        if self.normalize:
            x = (x - self.mean) / self.std
        if self.divisor > 1:
            H, W = x.shape[-2:]
            x = F.pad(x, (0, -W % self.divisor, 0, -H % self.divisor), value=self.pad_value)
        return x


class SegmentorLogits(nn.Module):
    """mmseg's EncoderDecoder in 'whole' test mode: image -> per-pixel class logits (batch,
    classes, H, W) at the input size, the ``seg_logits`` mmseg's ``inference_model`` returns for
    an image of that size (the argmax of which is its ``pred_sem_seg``)."""

    def __init__(self, segmentor):
        super().__init__()
        mode = segmentor.test_cfg.get('mode', 'whole')
        if mode != 'whole':
            raise ValueError(f"model.test_cfg.mode={mode!r}: only 'whole' inference exports (one "
                             f"pass over the image); set model.test_cfg.mode='whole'")
        pre = segmentor.data_preprocessor
        test_cfg = pre.test_cfg or {}
        if test_cfg.get('size'):
            raise ValueError('data_preprocessor.test_cfg.size pads every image to one size; '
                             'export pads to a multiple instead: set '
                             'data_preprocessor.test_cfg=dict(size_divisor=32)')
        self.normalizer = ImageNormalizer(pre, test_cfg.get('size_divisor'))
        self.segmentor = segmentor

    def forward(self, image):
        H, W = image.shape[-2:]
        x = self.normalizer(image)
        # a torch.Size img_shape makes the decode head resize to it (mmseg's slide-mode rule),
        # which is the padded input here as in whole mode
        # (the decode head reads the first image's meta only: one meta for the batch, so that
        # the batch size stays symbolic)
        meta = dict(img_shape=x.shape[2:], pad_shape=x.shape[2:], ori_shape=(H, W))
        logits = self.segmentor.encode_decode(x, [meta])
        # mmseg's postprocess_result: padding cropped, then resized to the original shape, which
        # is this one
        return logits[:, :, :H, :W]


class DetectorFeatures(nn.Module):
    """A detector's ``extract_feat``: image -> the neck's feature maps (FPN levels)."""

    def __init__(self, detector):
        super().__init__()
        pre = detector.data_preprocessor
        self.normalizer = ImageNormalizer(pre, pre.pad_size_divisor)
        self.detector = detector

    def forward(self, image):
        return tuple(self.detector.extract_feat(self.normalizer(image)))


class AveragingPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two averaging matrices built from the input's size (pooled =
    A_h x A_w^T): exporters write adaptive pooling with index tables fixed at the traced size
    (UPerHead's pyramid pooling then fails at other sizes), these export with a symbolic one."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = ((output_size, output_size) if isinstance(output_size, int)
                            else tuple(output_size))

    def forward(self, x):
        H, W = x.shape[-2:]
        oh, ow = (size or full for size, full in zip(self.output_size, (H, W)))
        return torch.einsum('oh,nchw,pw->ncop', _averaging(oh, H, x), x, _averaging(ow, W, x))


def _averaging(out, size, like):
    """(out, size): row i averages cells floor(i*size/out) .. ceil((i+1)*size/out) - 1, as
    adaptive pooling does."""
    i = torch.arange(out, device=like.device)[:, None]
    j = torch.arange(size, device=like.device)[None]
    cells = ((j >= i * size // out) & (j < ((i + 1) * size + out - 1) // out)).to(like.dtype)
    return cells / cells.sum(1, keepdim=True)


@contextmanager
def averaging_pools(module):
    """While exporting: every nn.AdaptiveAvgPool2d of ``module`` replaced by an AveragingPool2d
    (the same averages, summed in another order)."""
    swapped = [(parent, name, child) for parent in module.modules()
               for name, child in parent.named_children()
               if isinstance(child, nn.AdaptiveAvgPool2d)]
    for parent, name, child in swapped:
        setattr(parent, name, AveragingPool2d(child.output_size))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
