"""Segmentors and detectors whose neck or heads take their input channels from the backbone
(SSMEncoderDecoder, SSMMaskRCNN, SSMCascadeRCNN): the same model as the parent class built with the
numbers spelled out, channels that follow the backbone's arch, and a clear error for a number that
disagrees."""
import copy

import pytest
import torch
from mmdet.models.detectors import MaskRCNN
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.models.segmentors import EncoderDecoder

import mmssm  # noqa: F401
from mmssm.registry import DET_MODELS, SEG_MODELS

VIM_DEMO = 'configs/demo/upernet_vim-demo_synthetic-ade20k.py'
VMAMBA_DEMO = 'configs/demo/upernet_vmamba-demo_synthetic-ade20k.py'
MASK_RCNN_DEMO = 'configs/demo/mask-rcnn_vmamba-demo_synthetic-coco.py'


def model_cfg(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    return cfg.model


def build(registry, cfg):
    torch.manual_seed(0)
    return registry.build(copy.deepcopy(cfg))


def spelled_out(cfg, parent, **parts):
    """The same config for the parent class, with the channels written as numbers."""
    cfg = copy.deepcopy(cfg)
    cfg.type = parent
    for part, values in parts.items():
        cfg[part].update(values)
    return cfg


@pytest.mark.parametrize('path,parts', [
    (VMAMBA_DEMO, dict(decode_head=dict(in_channels=[16, 32, 64, 128]),
                       auxiliary_head=dict(in_channels=64))),
    (VIM_DEMO, dict(neck=dict(embed_dim=96), decode_head=dict(in_channels=[96] * 4),
                    auxiliary_head=dict(in_channels=96))),
], ids=['heads', 'channel-keeping neck'])
def test_segmentor_equals_the_parent_with_numbers(path, parts):
    cfg = model_cfg(path)
    ours, theirs = build(SEG_MODELS, cfg), build(SEG_MODELS, spelled_out(cfg, 'EncoderDecoder', **parts))
    assert isinstance(ours, EncoderDecoder) and type(theirs) is EncoderDecoder
    assert ours.decode_head.in_channels == parts['decode_head']['in_channels']
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for name, value in theirs_sd.items():
        torch.testing.assert_close(ours_sd[name], value, rtol=0, atol=0, msg=name)


def test_detector_neck_follows_the_backbone_arch():
    cfg = model_cfg(MASK_RCNN_DEMO)
    model = build(DET_MODELS, cfg)
    assert isinstance(model, MaskRCNN) and model.neck.in_channels == [16, 32, 64, 128]
    cfg.backbone.arch.embed_dims = 8  # what a leaf config changes: the arch only
    assert build(DET_MODELS, cfg).neck.in_channels == [8, 16, 32, 64]


def test_a_number_that_disagrees_is_named():
    cfg = model_cfg(VMAMBA_DEMO)
    cfg.auxiliary_head.in_channels = 32
    with pytest.raises(ValueError, match=r'auxiliary_head.in_channels=32, but the backbone outputs '
                                         r'64 there; leave auxiliary_head.in_channels out'):
        build(SEG_MODELS, cfg)
    cfg = model_cfg(VMAMBA_DEMO)
    cfg.auxiliary_head = [dict(cfg.auxiliary_head), dict(cfg.auxiliary_head, in_index=1,
                                                          in_channels=64)]
    with pytest.raises(ValueError, match=r'auxiliary_head\[1\].in_channels=64, but the backbone '
                                         r'outputs 32 there'):
        build(SEG_MODELS, cfg)
    cfg = model_cfg(MASK_RCNN_DEMO)
    cfg.neck.in_channels = [256, 512, 1024, 2048]
    with pytest.raises(ValueError, match=r'neck.in_channels=\[256, 512, 1024, 2048\], but the '
                                         r'backbone outputs \[16, 32, 64, 128\]'):
        build(DET_MODELS, cfg)


def test_a_backbone_that_does_not_say_takes_the_numbers_of_the_config():
    cfg = model_cfg(VMAMBA_DEMO)
    cfg.backbone = dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3))
    cfg.decode_head.in_channels = [64, 128, 256, 512]
    cfg.auxiliary_head.in_channels = 256
    model = build(SEG_MODELS, cfg)
    assert not hasattr(model.backbone, 'out_channels')
    assert model.decode_head.in_channels == [64, 128, 256, 512]
