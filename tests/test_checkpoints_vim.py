"""Loading checkpoints in the official Vim release layout, made here from a model of ours."""
import pytest
import torch
from timm.layers import resample_abs_pos_embed

from mmssm.models.backbones import VisionMamba
from mmssm.models.backbones.vim import STACKED
from tools.model_converters import vim2mmssm

SMALL = dict(embed_dims=32, depth=3, d_state=4)


def build(**kw):
    torch.manual_seed(kw.pop('seed', 0))
    model = VisionMamba(arch=kw.pop('arch', SMALL), out_indices=(2, ), **kw)
    if model.init_cfg is None:
        model.init_weights()
    return model


def official_file(tmp_path, source):
    """What hustvl/Vim saves: {'model': ...}, patch_embed.proj, the class token's position
    embedding at the middle of pos_embed, each direction's SSM tensors apart (x_proj, x_proj_b,
    ...), a classifier and a final norm."""
    sd = {k: v.clone() for k, v in source.state_dict().items()}
    for key in [k for k in sd if k.endswith('.A_logs')]:
        mixer = key[:-len('A_logs')]
        for ours, fwd, bwd, stack in STACKED:
            stacked = sd.pop(mixer + ours)
            sd[mixer + fwd], sd[mixer + bwd] = stacked.chunk(2) if stack is torch.cat else stacked
    grid = sd.pop('pos_embed')
    mid = grid.shape[1] // 2
    sd['pos_embed'] = torch.cat((grid[:, :mid], sd.pop('cls_pos_embed'), grid[:, mid:]), dim=1)
    sd['patch_embed.proj.weight'] = sd.pop('patch_embed.weight')
    sd['patch_embed.proj.bias'] = sd.pop('patch_embed.bias')
    sd['norm_f.weight'] = torch.ones(32)
    sd['head.weight'], sd['head.bias'] = torch.randn(1000, 32), torch.randn(1000)
    path = tmp_path / 'vim_official.pth'
    torch.save({'model': sd, 'epoch': 300}, path)
    return path


def test_official_checkpoint_loads_exactly(tmp_path):
    source = build(img_size=64, with_cls_token=True)
    path = official_file(tmp_path, source)
    model = build(img_size=64, with_cls_token=True, seed=1,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for k, v in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x), source.eval()(x))


def test_pos_embed_resized_and_class_token_dropped(tmp_path):
    source = build(img_size=64, with_cls_token=True)
    path = official_file(tmp_path, source)
    model = build(img_size=(96, 128), seed=1, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert not hasattr(model, 'cls_token')
    expected = resample_abs_pos_embed(source.pos_embed.detach(), [6, 8], [4, 4], num_prefix_tokens=0)
    torch.testing.assert_close(model.pos_embed.detach(), expected)
    torch.testing.assert_close(model.layers[2].mixer.A_logs, source.layers[2].mixer.A_logs)


def test_wrong_checkpoints_name_the_keys(tmp_path):
    path = official_file(tmp_path, build(img_size=64, with_cls_token=True))
    deeper = build(arch=dict(embed_dims=32, depth=4, d_state=4), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r"missing keys \(\d+\): \['layers.3"):
        deeper.init_weights()
    wider = build(arch=dict(embed_dims=48, depth=3, d_state=4), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'shape mismatches .*mixer.A_logs: file \(128, 4\) vs model \(192, 4\)'):
        wider.init_weights()
    other = tmp_path / 'vmamba.pth'
    torch.save({'model': {'layers.0.blocks.0.op.x_proj_weight': torch.zeros(4, 8, 96)}}, other)
    with pytest.raises(ValueError, match="unexpected keys .*layers.0.blocks.0.op.x_proj_weight"):
        build(init_cfg=dict(type='Pretrained', checkpoint=str(other))).init_weights()
    with pytest.raises(FileNotFoundError, match='nowhere.pth not found'):
        build(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nowhere.pth'))).init_weights()


def test_converter_tool_output_loads_with_prefix(tmp_path, capsys):
    source = build(img_size=64, with_cls_token=True)
    dst = tmp_path / 'out' / 'vim.pth'
    vim2mmssm.main([str(official_file(tmp_path, source)), str(dst)])
    assert 'tensors' in capsys.readouterr().out
    model = build(img_size=64, with_cls_token=True, seed=1,
                  init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.cls_pos_embed, source.cls_pos_embed)
    # a converted (or mmseg/mmdet-trained) file holds the backbone under 'backbone.': it converts
    # to itself, as in every family
    again = tmp_path / 'again.pth'
    vim2mmssm.main([str(dst), str(again)])
    first, second = (torch.load(p, weights_only=True)['state_dict'] for p in (dst, again))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    other = tmp_path / 'vmamba.pth'
    torch.save({'model': {'layers.0.blocks.0.op.A_logs': torch.zeros(4, 1)}}, other)
    with pytest.raises(SystemExit, match='not a Vim checkpoint'):
        vim2mmssm.main([str(other), str(tmp_path / 'x.pth')])
