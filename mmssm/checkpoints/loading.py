"""``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` for mmssm backbones.

mmengine's own Pretrained init loads non-strictly and only logs what did not match, which turns a
checkpoint of the wrong model into a silent start from random weights. Here every key the model
expects must come from the file with the right shape, or loading stops with the names of the keys
that do not fit.
"""
import os

from .reading import read_checkpoint
from .vim import adapt_vim_state_dict, convert_official_vim, is_official_vim

# per backbone class: (is the dict in the official layout, convert it, fit it to the model)
FAMILIES = {
    'VisionMamba': (is_official_vim, convert_official_vim, adapt_vim_state_dict),
}
SHOWN = 8


def read_state_dict(path, prefix=None):
    """The state dict inside a checkpoint file: official files wrap it in 'model', mmengine's in
    'state_dict'; ``prefix`` (e.g. 'backbone.') selects and strips a submodule's keys."""
    if '://' not in str(path) and not os.path.isfile(path):
        raise FileNotFoundError(f'pretrained checkpoint {path} not found: download the official '
                                f'weights to that path, or set model.backbone.init_cfg=None')
    ckpt = read_checkpoint(path)
    for wrapper in ('model', 'state_dict', 'module'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(wrapper), dict):
            ckpt = ckpt[wrapper]
            break
    if prefix:
        ckpt = {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)}
        if not ckpt:
            raise ValueError(f'{path}: no key starts with prefix {prefix!r}')
    return ckpt


def load_official_checkpoint(model, path, prefix=None):
    family = type(model).__name__
    is_official, convert, adapt = FAMILIES[family]
    state_dict = read_state_dict(path, prefix)
    if is_official(state_dict):
        state_dict = convert(state_dict)
    state_dict = adapt(state_dict, model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(f'{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
                         for k, v in expected.items()
                         if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape))
    if missing or unexpected or wrong_shape:
        problems = [f'{what} ({len(keys)}): {keys[:SHOWN]}{" ..." if len(keys) > SHOWN else ""}'
                    for what, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                                       ('shape mismatches', wrong_shape)) if keys]
        raise ValueError(f'{path} does not fit this {family} (arch {getattr(model, "arch", "?")}): '
                       + '; '.join(problems) + '. Is it a checkpoint of this model family and size?')
    model.load_state_dict(state_dict, strict=True)
