"""What is exported: a segmentor whole, a detector's backbone and neck, each from the raw image.

Both take the image as mmcv loads it (batch, 3, H, W), float32 BGR in 0..255, and do the data
preprocessor's work inside the graph (channel order, mean/std, padding to the size divisor), so
that the exported file needs nothing from OpenMMLab to run.
"""
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
        metas = [dict(img_shape=x.shape[2:], pad_shape=x.shape[2:], ori_shape=(H, W))]
        logits = self.segmentor.encode_decode(x, metas * image.shape[0])
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
