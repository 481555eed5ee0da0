import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import MODELS as SEG_MODELS

import mmssm  # noqa: F401
from mmssm.models.necks import SimpleFeaturePyramid


def test_simple_feature_pyramid_strides_from_the_last_map():
    neck = DET_MODELS.build(dict(type='SimpleFeaturePyramid', in_channels=32, out_channels=16))
    assert isinstance(neck, SimpleFeaturePyramid)
    assert SEG_MODELS.get('SimpleFeaturePyramid') is SimpleFeaturePyramid
    earlier, last = torch.randn(2, 32, 6, 10), torch.randn(2, 32, 6, 10)
    outs = neck((earlier, last))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 24, 40), (2, 16, 12, 20), (2, 16, 6, 10),
                                              (2, 16, 3, 5), (2, 16, 2, 3)]
    torch.testing.assert_close(outs[2], neck.levels[2](last))


def test_simple_feature_pyramid_rejects_unknown_scales():
    with pytest.raises(ValueError, match='scale factor 3.0'):
        SimpleFeaturePyramid(32, scale_factors=(4.0, 3.0))
