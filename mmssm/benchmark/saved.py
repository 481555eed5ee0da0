"""What each backbone block keeps for the backward pass, measured, against a budget.

Every tensor autograd saves during a training forward goes through
``torch.autograd.graph.saved_tensors_hooks``; it is charged to the block running at that moment
(forward pre/post hooks keep track) and counted once per storage (views and repeated saves share
one); parameters themselves are left out. Running the batch twice over (2b images) and once (b)
splits a block's saves into what grows with the images (activations: per image, the difference)
and what does not (copies and functions of the weights: autocast's bf16 casts, A = -exp(A_log),
stacked projections; 2 s(b) - s(2b)).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List

import torch
import torch.nn as nn

# Chunk length of mamba_ssm's CUDA scan: it keeps the state at every chunk end for the backward
MAMBA_CHUNK = 2048


@dataclass
class BlockSaved:
    index: int
    name: str
    kind: str
    tokens: int = 0  # tokens per image the block saw
    batch: int = 0  # images
    seqlen: int = 0  # length of each sequence it scanned (a window's for windowed blocks)
    saved_bytes: int = 0  # everything the block saved, at ``batch``
    tensors: int = 0
    by_dtype: Dict[str, int] = field(default_factory=dict)
    per_image_bytes: int = None  # what grows with the batch, per image
    constant_bytes: int = None  # what does not (weight copies and functions of weights)
    mixer: str = None  # class of the block's token mixer
    budget_bytes: int = None  # per image: the official block with its mixer fused as mamba_ssm's
    official_bytes: int = None  # per image: what the official implementation keeps


def find_blocks(backbone: nn.Module):
    """The backbone's blocks: the members of every ModuleList whose members hold no ModuleList
    themselves (each stage's blocks, in order), else the modules that hold a token mixer (a
    child named ``mixer``)."""
    blocks = [(f'{name}.{i}', m) for name, lst in backbone.named_modules()
              if isinstance(lst, nn.ModuleList)
              and not any(isinstance(sub, nn.ModuleList) for m in lst for sub in m.modules())
              for i, m in enumerate(lst)]
    if blocks:
        return blocks
    blocks = [(n, m) for n, m in backbone.named_modules() if isinstance(getattr(m, 'mixer', None),
                                                                          nn.Module)]
    if not blocks:
        raise ValueError(f'{type(backbone).__name__}: no blocks found (no ModuleList of blocks '
                         f'and no module with a `mixer` child); pass blocks= explicitly')
    return blocks


def mixer_of(block):
    """A block's token mixer (its ``mixer`` or ``op`` child), or None."""
    for name in ('mixer', 'op'):
        m = getattr(block, name, None)
        if isinstance(m, nn.Module):
            return m
    return None


def _storage_key(t):
    return (t.device, t.untyped_storage().data_ptr())


def measure_saved(backbone: nn.Module, x: torch.Tensor, amp_dtype=None, blocks=None
                  ) -> List[BlockSaved]:
    """Runs one training forward of ``backbone`` on ``x`` and returns what each block saved."""
    blocks = blocks or find_blocks(backbone)
    records = [BlockSaved(i, n, type(m).__name__, mixer=type(mixer_of(m)).__name__
                          if mixer_of(m) is not None else None)
               for i, (n, m) in enumerate(blocks)]
    params = {_storage_key(p) for p in backbone.parameters()}
    seen, stack = set(), []

    images = x.shape[0]

    def pre_hook(index):
        def hook(module, args):
            stack.append(index)
            first = args[0] if args else None
            record = records[index]
            if isinstance(first, torch.Tensor) and first.dim() in (3, 4):
                # (sequences, seqlen, dims) or (batch, C, H, W); windowed blocks see several
                # sequences per image
                record.batch = images
                record.seqlen = (first.shape[1] if first.dim() == 3
                                 else first.shape[2] * first.shape[3])
                record.tokens = first.shape[0] * record.seqlen // images
        return hook

    def post_hook(module, args, output):
        stack.pop()

    def pack(t):
        key = _storage_key(t)
        if stack and key not in params and key not in seen:
            seen.add(key)
            record = records[stack[-1]]
            nbytes = t.untyped_storage().nbytes()
            record.saved_bytes += nbytes
            dtype = str(t.dtype).replace('torch.', '')
            record.by_dtype[dtype] = record.by_dtype.get(dtype, 0) + nbytes
            record.tensors += 1
        return t

    handles = []
    for i, (_, module) in enumerate(blocks):
        handles.append(module.register_forward_pre_hook(pre_hook(i)))
        handles.append(module.register_forward_hook(post_hook))
    was_training = backbone.training
    backbone.train()
    cast = torch.autocast(x.device.type, amp_dtype, enabled=amp_dtype is not None)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), cast:
            backbone(x)
    finally:
        for h in handles:
            h.remove()
        backbone.train(was_training)
    return records


def block_activations(backbone: nn.Module, x: torch.Tensor, amp_dtype=None, blocks=None
                      ) -> List[BlockSaved]:
    """measure_saved at ``x``'s batch b, with per_image_bytes and constant_bytes filled from a
    second run at 2b. b must be at least 2: with one image some reshapes and ``contiguous()``
    calls return views instead of copies, so one image does not save what each of several does."""
    if x.shape[0] < 2:
        raise ValueError('block_activations needs a batch of at least 2 images (one image saves '
                         'differently: some copies become views)')
    blocks = blocks or find_blocks(backbone)
    once = measure_saved(backbone, x, amp_dtype, blocks)
    twice = measure_saved(backbone, torch.cat((x, x)), amp_dtype, blocks)
    b = x.shape[0]
    for one, two in zip(once, twice):
        one.per_image_bytes = (two.saved_bytes - one.saved_bytes) // b
        one.constant_bytes = 2 * one.saved_bytes - two.saved_bytes
    return once


def mamba_fused_vim_block_bytes(batch, tokens, dim, d_inner, dt_rank, d_state, act_bytes):
    """Bytes one official Vim block ("bimamba v2", fused add + RMSNorm, residual in fp32,
    mamba_ssm's mamba_inner_fn_no_out_proj for each direction with checkpoint_lvl=1, no drop
    path) keeps for the backward, from mamba_ssm's source (MambaInnerFn.forward's
    save_for_backward, selective_scan_cuda.fwd's allocations):

    * fused add + RMSNorm: the fp32 residual sum (4 d) and rstd (4) per token;
    * in_proj (``weight @ x``): its input, d per token;
    * per direction: ``xz`` (2 d_inner; the reverse direction's is a flipped copy), ``x_dbl``
      (dt_rank + 2 d_state), B and C made contiguous (2 d_state), the scan's ungated output
      ``out`` (d_inner), and the fp32 state at every 2048-token chunk end
      (d_inner x 2 d_state x 4 bytes per chunk); conv1d_out and delta are recomputed;
    * out_proj: its input, the averaged directions (d_inner).

    Per image (``batch`` images in all); what does not grow with the batch (the weights'
    autocast copies, A = -exp(A_log)) is left out. ``act_bytes`` is the activation element size
    (2 under bf16/fp16 autocast, 4 in fp32)."""
    per_token = 4 * dim + 4 + act_bytes * (dim + 2 * (3 * d_inner + dt_rank + 4 * d_state)
                                           + d_inner)
    chunks = math.ceil(tokens / MAMBA_CHUNK)
    return batch * (tokens * per_token + 2 * d_inner * chunks * 2 * d_state * 4)


def _ssm_dims(mixer):
    """(d, in_proj outputs, d_inner, K, dt_rank, d_state) of a Mamba mixer."""
    if not all(hasattr(mixer, a) for a in ('in_proj', 'out_proj', 'd_inner', 'dt_rank',
                                           'd_state', 'num_routes')):
        raise TypeError(f'{type(mixer).__name__}: the fused-Mamba budget needs in_proj, out_proj, '
                        f'd_inner, num_routes, dt_rank and d_state')
    return (mixer.in_proj.in_features, mixer.in_proj.out_features, mixer.d_inner,
            mixer.num_routes, mixer.dt_rank, mixer.d_state)


def _chunk_states(seqlen, E, N):
    """One route's fp32 state at each of mamba_ssm's 2048-token chunk ends, per sequence."""
    return E * math.ceil(seqlen / MAMBA_CHUNK) * 2 * N * 4


def _mlp_bytes(block, s):
    """Per token, a pre-norm MLP as timm's Mlp keeps it: LayerNorm's fp32 input and statistics,
    fc1's input, the GELU's input, fc2's input."""
    if getattr(block, 'mlp', None) is None:
        return 0
    d, hidden = block.mlp.fc1.in_features, block.mlp.fc1.out_features
    return 4 * d + 8 + s * (d + 2 * hidden)


def vim_budget(block, record, s):
    d, _, E, _, R, N = _ssm_dims(block.mixer)
    return mamba_fused_vim_block_bytes(1, record.tokens, d, E, R, N, s)


def vmamba_budget(block, record, s):
    """The release's VSSBlock (v2: LayerNorm, SS2D without z, out LayerNorm on the fp32 sum of
    the routes, MLP) with SS2D fused as mamba_ssm's MambaInnerFn (checkpoint_lvl=1) would be:
    per token LayerNorm's fp32 input and statistics (4d + 8), in_proj's input (d s), xz (the
    in_proj output), per route x_dbl, B and C copies and the ungated scan output
    ((R + 4N + E) s), out_norm's fp32 input and statistics (4E + 8), with the v0 gate the
    gate's two factors (4E + E s), out_proj's input (E s), the MLP; plus each route's chunk-end
    states."""
    d, xz, E, K, R, N = _ssm_dims(block.op)
    gate = (4 * E + E * s) if getattr(block.op, 'gate', False) else 0
    per_token = (4 * d + 8 + d * s + xz * s + K * (R + 4 * N + E) * s + 4 * E + 8 + gate
                 + E * s + _mlp_bytes(block, s))
    return record.tokens * per_token + K * _chunk_states(record.tokens, E, N)


def mambavision_budget(block, record, s):
    """The release's hybrid Block with MambaVisionMixer fused as mamba_ssm's MambaInnerFn
    (checkpoint_lvl=1): per token LayerNorm's fp32 input and statistics (4d + 8), in_proj's input
    (d s), xz (d s), x_dbl, B and C copies and the scan output ((R + 4N + E) s), the z branch's
    SiLU input (E s), out_proj's input (d s), layer scale's inputs (2 d s, B and L), the MLP;
    plus the chunk-end states of each window's scan."""
    d, xz, E, _, R, N = _ssm_dims(block.op)
    scale = 2 * d * s if getattr(block, 'layer_scale', False) else 0
    per_token = (4 * d + 8 + d * s + xz * s + (R + 4 * N + E) * s + E * s + d * s + scale
                 + _mlp_bytes(block, s))
    windows = record.tokens // record.seqlen
    return record.tokens * per_token + windows * _chunk_states(record.seqlen, E, N)


#: mixer class name -> budget(block, record, act_bytes): per image, what the official block
#: keeps with its mixer fused as mamba_ssm's MambaInnerFn; other blocks have none
BUDGETS = {'BiMambaMixer': vim_budget, 'SS2D': vmamba_budget,
           'MambaVisionMixer': mambavision_budget}
#: mixer class name -> official(block, record, act_bytes): per image, what the official
#: implementation keeps (Vim's is its fused block)
OFFICIAL = {'BiMambaMixer': vim_budget}


def with_budgets(records, blocks, act_bytes):
    for record, (_, block) in zip(records, blocks):
        budget, official = BUDGETS.get(record.mixer), OFFICIAL.get(record.mixer)
        if budget is not None:
            record.budget_bytes = budget(block, record, act_bytes)
        if official is not None:
            record.official_bytes = official(block, record, act_bytes)
    return records


def saved_table(saved):
    """Markdown table: per shape and run of consecutive blocks with equal figures, the activations
    saved per image (MiB and bytes per token), the budget's and the official implementation's,
    and what does not grow with the batch."""
    lines = ['| shape | blocks | kind | tokens | MiB/img/block | B/token | budget B/token | '
             'vs budget | official B/token | vs official | weight-sized KiB |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for shape, records in saved.items():
        runs = []  # [figures, first name, last name]
        for r in records:
            cells = []
            for ref in (r.budget_bytes, r.official_bytes):
                cells += (['–', '–'] if ref is None else
                          [f'{ref / r.tokens:.0f}', f'{r.per_image_bytes / ref:.2f}x'])
            kind = r.kind if r.mixer is None else f'{r.kind}({r.mixer})'
            figures = (f'{kind} | {r.tokens} | {r.per_image_bytes / 2**20:.2f} | '
                       f'{r.per_image_bytes / r.tokens:.0f} | {" | ".join(cells)} | '
                       f'{r.constant_bytes / 1024:.0f}')
            if runs and runs[-1][0] == figures:
                runs[-1][2] = r.name
            else:
                runs.append([figures, r.name, r.name])
        for figures, first, last in runs:
            names = first if first == last else f'{first} .. {last}'
            lines.append(f'| {shape} | {names} | {figures} |')
    return '\n'.join(lines)
