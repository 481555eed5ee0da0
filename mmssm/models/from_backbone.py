"""mmseg's EncoderDecoder and mmdet's Mask / Cascade Mask R-CNN, with the neck's (or, without a
neck, the heads') input channels taken from the backbone's ``out_channels``.

A config then names the backbone's arch once: ``arch='B'`` in a leaf config changes the widths the
neck and heads are built for, where plain OpenMMLab configs repeat them as numbers. What is filled
in is only what the config leaves out (or sets to None); a number the config does give must equal
the backbone's, or building stops naming both. The models built are the parents' own, module for
module.
"""
from operator import itemgetter

from mmdet.models.detectors import CascadeRCNN, MaskRCNN
from mmseg.models.segmentors import EncoderDecoder

from mmssm.registry import DET_MODELS, SEG_MODELS


def _one_width(channels):
    if len(set(channels)) != 1:
        raise ValueError(f'Feature2Pyramid takes maps of one width; the backbone gives {channels}')
    return channels[0]


# How a neck takes the backbone's channels: (its argument, that argument's value from the
# channels, whether its outputs keep their inputs' channels so the heads read the backbone's too).
NECK_INPUTS = {
    'FPN': ('in_channels', list, False),
    'SimpleFeaturePyramid': ('in_channels', itemgetter(-1), False),  # reads the last map only
    'Feature2Pyramid': ('embed_dim', _one_width, True),
}
HEADS = ('decode_head', 'auxiliary_head')  # mmseg's; mmdet's heads read the neck's out_channels


def _fill(cfg, key, value, where):
    given = cfg.get(key)
    if given is None:
        cfg[key] = value
    elif (list(given) if isinstance(given, (list, tuple)) else given) != value:
        raise ValueError(f'{where}.{key}={given!r}, but the backbone outputs {value!r} there; '
                         f'leave {where}.{key} out (or None) to take it from the backbone')


def _head_channels(head, channels):
    index = head.get('in_index', -1)
    return [channels[i] for i in index] if isinstance(index, (list, tuple)) else channels[index]


class ChannelsFromBackbone:
    """Builds the backbone first, fills the neck's or heads' input channels from its
    ``out_channels``, then lets the parent build the rest around that backbone."""

    registry = None

    def __init__(self, backbone, neck=None, **parts):
        backbone = self.registry.build(backbone)
        # a backbone that does not say what it outputs (mmseg's ResNet): the config gives it all
        channels = getattr(backbone, 'out_channels', None)
        keeps_channels = neck is None and channels is not None
        if channels is not None and neck is not None and neck.get('type') in NECK_INPUTS:
            key, value, keeps_channels = NECK_INPUTS[neck['type']]
            neck = dict(neck)
            _fill(neck, key, value(channels), 'neck')
        for name in HEADS if keeps_channels else ():
            heads = parts.get(name)
            if heads is None:
                continue
            many = isinstance(heads, (list, tuple))  # mmseg takes a list of auxiliary heads
            heads = [dict(head) for head in (heads if many else [heads])]
            for i, head in enumerate(heads):
                _fill(head, 'in_channels', _head_channels(head, channels),
                      f'{name}[{i}]' if many else name)
            parts[name] = heads if many else heads[0]
        # the parent builds ``backbone`` through its registry: a callable ``type`` is built by
        # calling it, which hands over the backbone built above
        super().__init__(backbone=dict(type=lambda: backbone), neck=neck, **parts)


@SEG_MODELS.register_module()
class SSMEncoderDecoder(ChannelsFromBackbone, EncoderDecoder):
    """mmseg's EncoderDecoder whose neck or heads take the backbone's ``out_channels``."""

    registry = SEG_MODELS


@DET_MODELS.register_module()
class SSMMaskRCNN(ChannelsFromBackbone, MaskRCNN):
    """mmdet's MaskRCNN whose neck takes the backbone's ``out_channels``."""

    registry = DET_MODELS


@DET_MODELS.register_module()
class SSMCascadeRCNN(ChannelsFromBackbone, CascadeRCNN):
    """mmdet's CascadeRCNN whose neck takes the backbone's ``out_channels``."""

    registry = DET_MODELS
