"""Checks of annotations as each sample loads, which name the file and the fix: a label map of
another size than its image trains silently and crashes at validation, and label values outside the
classes change the metrics silently."""
import os.path as osp

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image


class DataError(ValueError):
    """A data set file that cannot be used as it is."""


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
            raise DataError(
                f'label map {path} holds values {(bad[:8].astype(int) + shift).tolist()} that are neither '
                f'one of the {self.num_classes} classes ({classes}) nor the ignore index '
                f'{self.ignore_index}: remap them in the file (to {self.ignore_index} to '
                f'ignore those pixels) or set num_classes')
        return results
