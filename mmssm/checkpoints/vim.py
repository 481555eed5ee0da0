"""Official Vim checkpoints (hustvl/Vim releases, ``{'model': state_dict}``) to mmssm's layout.

The official layout differs from ours in three places: the patch embedding sits in a
``patch_embed.proj`` submodule, the class token's position embedding is stored inside
``pos_embed`` at the middle index (where the class token is inserted), and there is a classifier
(``head``) and a final norm (``norm_f``) that dense prediction does not use.
"""
import math

import torch

DROPPED_PREFIXES = ('head.', 'norm_f.', 'rope.')


def is_official_vim(state_dict) -> bool:
    return 'patch_embed.proj.weight' in state_dict


def convert_official_vim(state_dict):
    """Rename an official Vim state dict to mmssm's names. Model independent: the position grid
    keeps its size and the class token is kept if present."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(DROPPED_PREFIXES):
            continue
        out[key.replace('patch_embed.proj.', 'patch_embed.')] = value
    if 'cls_token' in out:
        pos = out['pos_embed']
        mid = (pos.shape[1] - 1) // 2
        out['cls_pos_embed'] = pos[:, mid:mid + 1]
        out['pos_embed'] = torch.cat((pos[:, :mid], pos[:, mid + 1:]), dim=1)
    return out


def adapt_vim_state_dict(state_dict, model):
    """Fit a state dict in mmssm's names to ``model``: resize the position grid (bicubic) and drop
    the class token when the model has none."""
    from timm.layers import resample_abs_pos_embed
    state_dict = dict(state_dict)
    if not model.with_cls_token:
        state_dict.pop('cls_token', None)
        state_dict.pop('cls_pos_embed', None)
    pos = state_dict.get('pos_embed')
    target = model.pos_embed.shape[1]
    if pos is not None and pos.dim() == 3 and pos.shape[1] != target:
        side = math.isqrt(pos.shape[1])
        if side * side != pos.shape[1]:
            raise ValueError(f'checkpoint pos_embed has {pos.shape[1]} positions, not a square grid; '
                             f'build the model with the img_size it was trained at')
        state_dict['pos_embed'] = resample_abs_pos_embed(pos, list(model.grid_size), [side, side],
                                                         num_prefix_tokens=0)
    return state_dict
