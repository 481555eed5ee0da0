"""Checks of annotations as each sample loads, which name the file and the fix: a label map of
another size than its image trains silently and crashes at validation, and label values outside the
classes change the metrics silently."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


class DataError(ValueError):
    """A data set file that cannot be used as it is."""


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
        values = np.unique(label)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if bad.size:
            reduced = ' after reduce_zero_label' if results.get('reduce_zero_label') else ''
            raise DataError(
                f'label map {path} holds values {bad[:8].tolist()} that are neither one of the '
                f'{self.num_classes} classes (0..{self.num_classes - 1}{reduced}) nor the '
                f'ignore index {self.ignore_index}: remap them in the file (to '
                f'{self.ignore_index} to ignore those pixels) or set num_classes')
        return results
