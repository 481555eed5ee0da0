"""Wrong weights are refused before they are evaluated or fine-tuned: tools/test.py (and resume)
load strictly, load_from needs most of the model's tensors, an official backbone file is pointed
to init_cfg, and testing a paper config does not ask for the ImageNet file it never reads."""
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmssm.apis import check_weights
from mmssm.checkpoints import CheckpointError
from mmssm.engine import CheckpointFitHook

REPO = Path(__file__).resolve().parents[1]


class Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3))
        self.decode_head = nn.Conv2d(8, 5, 1)


def runner(path='ckpt.pth'):
    return SimpleNamespace(model=Segmentor(), _load_from=path,
                           logger=logging.getLogger('test_checkpoint_fit'))


def own_checkpoint(**changes):
    state_dict = {k: v.clone() for k, v in Segmentor().state_dict().items()}
    state_dict.update(changes)
    return {'meta': {'iter': 4}, 'state_dict': state_dict}


def test_own_checkpoint_fits_strictly():
    CheckpointFitHook(strict=True).check(runner(), own_checkpoint())


def test_torchvision_resnet_is_refused_with_the_keys():
    import torchvision
    resnet = torchvision.models.resnet18().state_dict()
    for strict in (True, False):
        with pytest.raises(CheckpointError) as error:
            CheckpointFitHook(strict=strict).check(runner('resnet.pth'), resnet)
        message = str(error.value)
        assert message.startswith('resnet.pth does not fit this Segmentor: 0 of 11 model tensors')
        assert "missing keys (11): ['backbone.0.bias'" in message
        assert "unexpected keys (" in message and "'bn1.bias'" in message


def test_strict_names_a_changed_head():
    checkpoint = own_checkpoint(**{'decode_head.weight': torch.zeros(7, 8, 1, 1)})
    with pytest.raises(CheckpointError, match=r'shape mismatches \(1\): \[.decode_head.weight: '
                                              r'file \(7, 8, 1, 1\) vs model \(5, 8, 1, 1\)'):
        CheckpointFitHook(strict=True).check(runner(), checkpoint)


def test_fine_tuning_accepts_a_new_head_but_not_a_stranger(caplog):
    checkpoint = own_checkpoint(**{'decode_head.weight': torch.zeros(7, 8, 1, 1)})
    del checkpoint['state_dict']['decode_head.bias']
    CheckpointFitHook(strict=False).check(runner(), checkpoint)

    head_only = {'state_dict': {'decode_head.weight': torch.zeros(5, 8, 1, 1),
                                'decode_head.bias': torch.zeros(5)}}
    with pytest.raises(CheckpointError, match=r"2 of 11 model tensors found.*init_cfg"):
        CheckpointFitHook(strict=False).check(runner(), head_only)


def test_official_backbone_file_is_pointed_to_init_cfg(tmp_path):
    from test_checkpoints_vim import build, official_file

    model = nn.Module()
    model.backbone = build(img_size=64, with_cls_token=True)
    official = torch.load(official_file(tmp_path, model.backbone), weights_only=True)
    hook_runner = SimpleNamespace(model=model, _load_from='vim_t.pth',
                                  logger=logging.getLogger('test_checkpoint_fit'))
    with pytest.raises(CheckpointError, match=r"vim_t.pth is a backbone checkpoint \(an official "
                                              r"release\).*model.backbone.init_cfg=dict\("
                                              r"type='Pretrained', checkpoint='vim_t.pth'\)"):
        CheckpointFitHook(strict=False).check(hook_runner, official)


def test_testing_a_paper_config_does_not_need_the_imagenet_file(tmp_path):
    cfg = Config.fromfile(REPO / 'configs/upernet_vim-ti_ade20k.py')
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    with pytest.raises(FileNotFoundError, match='model.backbone.init_cfg'):
        check_weights(cfg)
    cfg.load_from = str(tmp_path / 'model.pth')
    (tmp_path / 'model.pth').write_bytes(b'x')
    check_weights(cfg, pretrained=False)
