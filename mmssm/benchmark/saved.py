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
    tokens: int = 0  # sequence length the block saw
    batch: int = 0
    saved_bytes: int = 0  # everything the block saved, at ``batch``
    tensors: int = 0
    by_dtype: Dict[str, int] = field(default_factory=dict)
    per_image_bytes: int = None  # what grows with the batch, per image
    constant_bytes: int = None  # what does not (weight copies and functions of weights)
    budget_bytes: int = None  # per image, the official fused implementation's


def find_blocks(backbone: nn.Module):
    """The backbone's blocks: modules that hold a token mixer (a child named ``mixer``), else the
    members of its longest ModuleList."""
    blocks = [(n, m) for n, m in backbone.named_modules() if isinstance(getattr(m, 'mixer', None),
                                                                          nn.Module)]
    if blocks:
        return blocks
    lists = [(n, m) for n, m in backbone.named_modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f'{type(backbone).__name__}: no blocks found (no module with a `mixer` '
                         f'child and no ModuleList); pass blocks= explicitly')
    name, longest = max(lists, key=lambda item: len(item[1]))
    return [(f'{name}.{i}', m) for i, m in enumerate(longest)]


def _storage_key(t):
    return (t.device, t.untyped_storage().data_ptr())


def measure_saved(backbone: nn.Module, x: torch.Tensor, amp_dtype=None, blocks=None
                  ) -> List[BlockSaved]:
    """Runs one training forward of ``backbone`` on ``x`` and returns what each block saved."""
    blocks = blocks or find_blocks(backbone)
    records = [BlockSaved(i, n, type(m).__name__) for i, (n, m) in enumerate(blocks)]
    params = {_storage_key(p) for p in backbone.parameters()}
    seen, stack = set(), []

    def pre_hook(index):
        def hook(module, args):
            stack.append(index)
            first = args[0] if args else None
            if isinstance(first, torch.Tensor) and first.dim() == 3:  # (batch, tokens, dims)
                records[index].batch, records[index].tokens = first.shape[0], first.shape[1]
            elif isinstance(first, torch.Tensor) and first.dim() == 4:  # (batch, C, H, W)
                records[index].batch = first.shape[0]
                records[index].tokens = first.shape[2] * first.shape[3]
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


def _mixer_dims(mixer):
    """(dim, d_inner, dt_rank, d_state) of a Mamba mixer; dt_rank and d_state may sit on the
    mixer or on a submodule of it (a shared SSM part)."""
    ssm = next((m for m in mixer.modules() if hasattr(m, 'dt_rank') and hasattr(m, 'd_state')),
               None)
    if ssm is None or not hasattr(mixer, 'in_proj') or not hasattr(mixer, 'out_proj'):
        raise TypeError(f'{type(mixer).__name__}: the fused-Mamba budget needs in_proj, out_proj '
                        f'and a module with dt_rank and d_state')
    return mixer.in_proj.in_features, mixer.out_proj.in_features, ssm.dt_rank, ssm.d_state


def vim_budget(block, record, act_bytes):
    return mamba_fused_vim_block_bytes(1, record.tokens, *_mixer_dims(block.mixer), act_bytes)


#: block class name -> budget(block, record, act_bytes): what the official fused implementation
#: keeps per image for that block; families without an entry are measured without a budget
BUDGETS = {'VimBlock': vim_budget}


def with_budgets(records, blocks, act_bytes):
    for record, (_, block) in zip(records, blocks):
        budget = BUDGETS.get(record.kind)
        if budget is not None:
            record.budget_bytes = budget(block, record, act_bytes)
    return records


def saved_table(saved):
    """Markdown table: per shape and run of consecutive blocks with equal figures, the activations
    saved per image (MiB and bytes per token), the budget's, and what does not grow with the
    batch."""
    lines = ['| shape | blocks | kind | tokens | MiB/img/block | B/token | budget B/token | '
             'vs budget | weight-sized KiB |', '|---|---|---|---|---|---|---|---|---|']
    for shape, records in saved.items():
        runs = []  # [figures, first name, last name]
        for r in records:
            budget, ratio = '–', '–'
            if r.budget_bytes is not None:
                budget = f'{r.budget_bytes / r.tokens:.0f}'
                ratio = f'{r.per_image_bytes / r.budget_bytes:.2f}x'
            figures = (f'{r.kind} | {r.tokens} | {r.per_image_bytes / 2**20:.2f} | '
                       f'{r.per_image_bytes / r.tokens:.0f} | {budget} | {ratio} | '
                       f'{r.constant_bytes / 1024:.0f}')
            if runs and runs[-1][0] == figures:
                runs[-1][2] = r.name
            else:
                runs.append([figures, r.name, r.name])
        for figures, first, last in runs:
            names = first if first == last else f'{first} .. {last}'
            lines.append(f'| {shape} | {names} | {figures} |')
    return '\n'.join(lines)
