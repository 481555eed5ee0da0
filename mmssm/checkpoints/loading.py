"""Reading checkpoint files and loading them strictly, for every mmssm backbone.

mmengine's own Pretrained init loads non-strictly and only logs what did not match, which turns a
checkpoint of the wrong model into a silent start from random weights. Here every key the model
expects must come from the file with the right shape, or loading stops with the names of the keys
that do not fit. What is specific to a family (its release's key names) lives in that family's
``checkpoint_filter``, beside the model.
"""
import fnmatch
import os

from mmengine.logging import print_log

from .reading import read_checkpoint

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


def backbone_weights(state_dict, head_prefixes=()):
    """The backbone's part of a whole model's state dict: a model saved from DDP has its keys
    under 'module.', a dense model trained with mmseg or mmdet its backbone's under 'backbone.',
    a classifier its head's under ``head_prefixes`` (left out)."""
    state_dict = {k.removeprefix('module.'): v for k, v in state_dict.items()}
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items()
                      if k.startswith('backbone.')}
    return {k: v for k, v in state_dict.items() if not k.startswith(tuple(head_prefixes))}


def _listed(what, keys):
    return f'{what} ({len(keys)}): {keys[:SHOWN]}{" ..." if len(keys) > SHOWN else ""}'


def describe_fit(state_dict, expected, may_lack=()):
    """How ``state_dict`` fits the ``expected`` one (a model's): (number of expected tensors found
    with their shape, the expected keys the file lacks but that match a ``may_lack`` pattern, the
    list of what does not fit: missing, unexpected and mis-shaped keys)."""
    missing = sorted(set(expected) - set(state_dict))
    own = [k for k in missing if any(fnmatch.fnmatchcase(k, p) for p in may_lack)]
    missing = [k for k in missing if k not in own]
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f'{k}: file {tuple(getattr(state_dict[k], "shape", ()))} vs model {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state_dict and tuple(getattr(state_dict[k], 'shape', ())) != tuple(v.shape))
    found = len(expected) - len(missing) - len(own) - len(wrong_shape)
    problems = [_listed(what, keys) for what, keys in (
        ('missing keys', missing), ('unexpected keys', unexpected),
        ('shape mismatches', wrong_shape)) if keys]
    return found, own, problems


def load_state_dict_strict(model, state_dict, source, may_lack=()):
    """Loads ``state_dict`` into ``model`` when it fits exactly, else raises naming the keys.

    ``may_lack``: fnmatch patterns of keys the model initialises itself when the file lacks them
    (e.g. a dense model's output norms, absent from a classification checkpoint); they are
    reported once, as newly initialised."""
    _, own, problems = describe_fit(state_dict, model.state_dict(), may_lack)
    if problems:
        raise ValueError(f'{source} does not fit this {type(model).__name__} (arch '
                         f'{getattr(model, "arch", "?")}): ' + '; '.join(problems)
                         + '. Is it a checkpoint of this model family and size?')
    model.load_state_dict(state_dict, strict=not own)
    if own:
        print_log(f'{source}: {type(model).__name__} initialised ' + _listed('keys', own)
                  + ' itself (not in the checkpoint)', logger='current')
