"""Checks of images and annotations as each sample loads, which name the file and the fix: a
label map of another size than its image trains silently and crashes at validation, label values
outside the classes change the metrics silently, and a truncated image or one that the resize
makes 0 pixels wide fails deep inside mmcv or OpenCV without naming the file."""
import os.path as osp

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS as ROOT_TRANSFORMS
from mmseg.registry import TRANSFORMS
from PIL import Image


class DataError(ValueError):
    """A data set file that cannot be used as it is."""


def _image_problem(path, scale):
    """What makes image file ``path`` unusable, or None: a JPEG or PNG without its end marker (cut
    short: the decoder refuses it), or a size that the keep-ratio resize to ``scale`` takes to
    0 pixels on a side."""
    with open(path, 'rb') as f:
        head = f.read(8)
        f.seek(max(osp.getsize(path) - 1024, 0))
        tail = f.read()
    # JPEG scan data escapes every 0xff byte, so an end-of-image marker in the last KiB is the
    # file's own, with or without padding after it
    if head[:3] == b'\xff\xd8\xff' and b'\xff\xd9' not in tail:
        return 'is truncated (a JPEG without its end-of-image marker)'
    if head == b'\x89PNG\r\n\x1a\n' and b'IEND' not in tail[-32:]:
        return 'is truncated (a PNG without its IEND chunk)'
    if scale is None:
        return None
    try:
        with Image.open(path) as image:
            size = image.size
    except OSError as error:
        return f'cannot be read as an image ({error})'
    resized = mmcv.rescale_size(size, tuple(scale) if isinstance(scale, list) else scale)
    if min(resized) < 1:
        return (f'is {size[0]}x{size[1]} pixels, which the pipeline\'s resize to fit {scale} '
                f'(keeping the aspect ratio) makes {resized[0]}x{resized[1]}')
    return None


@ROOT_TRANSFORMS.register_module()
class CheckImageFile(BaseTransform):
    """Put before LoadImageFromFile (mmseg's and mmdet's pipelines find it): the image file must be
    whole, and keep at least a pixel a side when resized to ``scale`` with its aspect ratio (the
    smallest scale the pipeline's resize draws; None: not checked). A remote file is not
    checked."""

    def __init__(self, scale=None):
        self.scale = scale

    def transform(self, results):
        path = results.get('img_path')
        problem = _image_problem(path, self.scale) if path and osp.isfile(path) else None
        if problem:
            raise DataError(f'image {path} {problem}: replace it (crop or pad it) or delete it')
        return results


def _values_beyond_8_bits(path):
    """The values above 255 in label map ``path`` when it is a deeper image (16-bit PNG, ...):
    mmseg's LoadAnnotations keeps only the low 8 bits of each (261 becomes 5). Only the header
    is read for an 8-bit file; a remote one is not checked."""
    if not path or not osp.isfile(path):
        return []
    with Image.open(path) as image:
        if not image.mode.startswith(('I', 'F')):  # 1, L, P, RGB...: 8 bits a channel at most
            return []
        values = np.unique(np.asarray(image))
    return values[values > 255].tolist()


@TRANSFORMS.register_module()
class CheckSegAnnotation(BaseTransform):
    """Put right after LoadAnnotations: the label map must have its image's size and hold only
    class indices (``0 .. num_classes - 1``, after reduce_zero_label) or ``ignore_index``."""

    def __init__(self, num_classes, ignore_index=255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results):
        if 'gt_seg_map' not in results:
            # mmseg's inference_model / MMSegInferencer drop LoadAnnotations from the test
            # pipeline: nothing to check
            return results
        label = results['gt_seg_map']
        path = results.get('seg_map_path')
        image_shape = tuple(results['ori_shape'][:2])
        if label.shape[:2] != image_shape:
            raise DataError(
                f'label map {path} is {label.shape[1]}x{label.shape[0]} pixels but its image '
                f"{results.get('img_path')} is {image_shape[1]}x{image_shape[0]}: a label map "
                f'must have the size of its image (resize it with nearest-neighbour sampling)')
        wide = _values_beyond_8_bits(path)
        if wide:
            raise DataError(
                f'label map {path} holds values {wide[:8]} above 255 (it is a 16-bit or deeper '
                f'image): mmseg reads label maps as 8-bit, where they would become other '
                f'classes. Remap them in the file to classes 0..{self.num_classes - 1} (or '
                f'{self.ignore_index} to ignore those pixels) and save it as an 8-bit image')
        values = np.unique(label)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if bad.size:
            # reduce_zero_label shifts every value down by one: report what the file holds
            shift = 1 if results.get('reduce_zero_label') else 0
            classes = (f'1..{self.num_classes} in the file, 0..{self.num_classes - 1} after '
                       f'reduce_zero_label' if shift else f'0..{self.num_classes - 1}')
            in_file = (bad[:8].astype(int) + shift).tolist()
            raise DataError(
                f'label map {path} holds values {in_file} that are neither '
                f'one of the {self.num_classes} classes ({classes}) nor the ignore index '
                f'{self.ignore_index}: remap them in the file (to {self.ignore_index} to '
                f'ignore those pixels) or set num_classes')
        return results
