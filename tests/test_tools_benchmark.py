import json
import statistics

import pytest
import torch
import torch.nn as nn

from mmssm.benchmark.meters import peak_bytes, time_calls
from mmssm.benchmark.saved import (block_activations, find_blocks, mamba_fused_vim_block_bytes,
                                   mambavision_budget, measure_saved, saved_table, vmamba_budget,
                                   with_budgets)
from mmssm.models.backbones import VisionMamba
from tools.analysis_tools.benchmark import main

DEMO_SEG = 'configs/demo/upernet_vim-demo_synthetic-ade20k.py'
DEMO_DET = 'configs/demo/cascade-mask-rcnn_vim-demo_synthetic-coco.py'
MB = 10**6


def test_cpu_peak_is_the_running_maximum_of_allocations():
    def step():
        a = torch.empty(MB // 4)  # 1 MB
        b = torch.empty(2 * MB // 4)  # 2 MB: 3 MB live
        del a
        c = torch.empty(MB // 8)  # 0.5 MB: 2.5 MB live
        del b, c

    peak = peak_bytes(step, torch.device('cpu'))
    assert 3 * MB <= peak < 3 * MB + 4096


def test_timing_needs_warmup_and_counts_repeats():
    with pytest.raises(ValueError, match='warm-up'):
        time_calls(lambda: None, torch.device('cpu'), warmup=0, repeats=3)
    calls = []
    timing = time_calls(lambda: calls.append(1), torch.device('cpu'), warmup=2, repeats=3)
    assert len(calls) == 5 and len(timing.seconds) == 3 and timing.median > 0


class Block(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.mixer = nn.Linear(dim, 2 * dim)

    def forward(self, x):
        return self.mixer(x).relu()[..., ::2]


def test_saved_bytes_are_charged_to_the_block_that_saves_them():
    """Linear keeps its input, relu its output; the next block's input is a view of that output
    (one storage, counted once, where it was first saved); parameters are not counted."""
    net = nn.Sequential(Block(8), Block(8))
    first, second = measure_saved(net, torch.randn(3, 5, 8))
    assert (first.batch, first.tokens) == (3, 5) and (second.batch, second.tokens) == (3, 5)
    assert first.saved_bytes == 4 * (3 * 5 * 8 + 3 * 5 * 16)
    assert second.saved_bytes == 4 * 3 * 5 * 16


def test_weight_copies_do_not_count_as_activations():
    """Under bf16 autocast the linear keeps a bf16 copy of its (16, 8) weight, which does not grow
    with the batch."""
    net = nn.Sequential(Block(8))
    x = torch.randn(2, 4, 8, requires_grad=True)
    (block, ) = block_activations(net, x, amp_dtype=torch.bfloat16)
    assert block.saved_bytes == 2 * (2 * 4 * 8 + 2 * 4 * 16 + 16 * 8)
    assert block.constant_bytes == 2 * 16 * 8
    assert block.per_image_bytes == 2 * (4 * 8 + 4 * 16)


def test_official_budget_formula():
    """Vim-Ti (d 192, d_inner 384, dt_rank 12, N 16) at 1248x1248 (6084 tokens: 3 chunks), bf16:
    per token 4*192 + 4 (fp32 residual, rstd) + 2 * (192 + 2 * (3*384 + 12 + 4*16) + 384)."""
    per_token = 4 * 192 + 4 + 2 * (192 + 2 * (3 * 384 + 12 + 64) + 384)
    assert per_token == 6836
    states = 2 * 384 * 3 * 32 * 4  # two directions' fp32 chunk-end states
    assert mamba_fused_vim_block_bytes(2, 6084, 192, 384, 12, 16, 2) == 2 * (
        6084 * per_token + states)


def test_vim_blocks_have_measured_bytes_and_budgets():
    vim = VisionMamba(arch=dict(embed_dims=32, depth=3, d_state=4), img_size=64)
    blocks = [(f'layers.{i}', b) for i, b in enumerate(vim.layers)]
    records = with_budgets(block_activations(vim, torch.randn(2, 3, 64, 64)), blocks,
                           act_bytes=4)
    assert [r.name for r in records] == ['layers.0', 'layers.1', 'layers.2']
    for r in records:
        assert (r.batch, r.tokens, r.kind, r.mixer) == (2, 16, 'VimBlock', 'BiMambaMixer')
        assert r.per_image_bytes > 0 and r.constant_bytes >= 0
        assert r.budget_bytes == mamba_fused_vim_block_bytes(1, 16, 32, 64, 2, 4, 4)
    text = saved_table({'64x64': records})
    ratio = records[1].per_image_bytes / records[1].budget_bytes
    assert 'VimBlock' in text and f'{ratio:.2f}x' in text
    with pytest.raises(ValueError, match='at least 2'):
        block_activations(vim, torch.randn(1, 3, 64, 64))


def test_every_stage_is_measured_and_mamba_blocks_have_budgets():
    """Hierarchical backbones: every stage's blocks in order; the Mamba blocks get their
    family's budget (the release's block with its mixer fused as mamba_ssm's), the convolution
    and attention blocks none."""
    from mmssm.models.backbones import MambaVision, VMamba
    vmamba = VMamba(arch=dict(embed_dims=8, depths=(1, 1, 2, 1)))
    mv = MambaVision(arch=dict(embed_dims=8, stem_channels=8, depths=(1, 1, 2, 2),
                               num_heads=(1, 1, 2, 4)), window_size=(8, 8, 4, 2))
    x = torch.randn(2, 3, 64, 64)
    for model, names, budgets in (
            (vmamba, ['layers.0.blocks.0', 'layers.1.blocks.0', 'layers.2.blocks.0',
                      'layers.2.blocks.1', 'layers.3.blocks.0'], [True] * 5),
            (mv, ['levels.0.blocks.0', 'levels.1.blocks.0', 'levels.2.blocks.0',
                  'levels.2.blocks.1', 'levels.3.blocks.0', 'levels.3.blocks.1'],
             [False, False, True, False, True, False])):
        blocks = find_blocks(model)
        records = with_budgets(block_activations(model, x, torch.bfloat16, blocks), blocks, 2)
        assert [r.name for r in records] == names
        assert [r.budget_bytes is not None for r in records] == budgets
        for r in records:
            assert r.per_image_bytes > 0
            if r.budget_bytes:
                assert r.per_image_bytes < r.budget_bytes
    # MambaVision's windows: stage 2's 4x4 map is one 4x4 window, stage 3's 2x2 map one 2x2
    assert [(r.tokens, r.seqlen) for r in records[2:5]] == [(16, 16), (16, 16), (4, 4)]


def test_vmamba_and_mambavision_budget_formulas():
    """VMamba-T stage 3 (d 384, 4 routes of 384 channels, dt_rank 24, N 1, MLP 4x) and
    MambaVision-T stage 3 (d 320, in_proj to 320, 160 scanned channels, dt_rank 20, N 8, MLP 4x),
    bf16, per token."""
    from types import SimpleNamespace

    from mmssm.models.backbones.mambavision import MambaVisionMixer
    from mmssm.models.backbones.vmamba import SS2D
    from mmssm.models.layers import PreNormBlock
    block = PreNormBlock(384, SS2D(384, d_state=1), mlp_ratio=4.)
    record = SimpleNamespace(tokens=1024, seqlen=1024)
    mlp = 4 * 384 + 8 + 2 * (384 + 2 * 1536)
    per_token = (4 * 384 + 8 + 2 * 384 + 2 * 384 + 4 * (24 + 4 + 384) * 2 + 4 * 384 + 8
                 + 2 * 384 + mlp)
    assert per_token == 17144
    assert vmamba_budget(block, record, 2) == 1024 * per_token + 4 * 384 * 2 * 4
    block = PreNormBlock(320, MambaVisionMixer(320), mlp_ratio=4.)
    record = SimpleNamespace(tokens=4 * 4096, seqlen=4096)  # four 64x64 windows
    mlp = 4 * 320 + 8 + 2 * (320 + 2 * 1280)
    per_token = 4 * 320 + 8 + 2 * 320 + 2 * 320 + (20 + 32 + 160) * 2 + 2 * 160 + 2 * 320 + mlp
    assert mambavision_budget(block, record, 2) == 4 * (4096 * per_token + 160 * 2 * 2 * 8 * 4)


def _run_tool(tmp_path, capsys, *args):
    """The tool's main() in this process (its imports cost more than its tiny runs)."""
    out = tmp_path / 'bench'
    main([*args, '--warmup', '1', '--repeats', '2', '--out', str(out)])
    return capsys.readouterr().out, json.loads((tmp_path / 'bench.json').read_text())


def _check_ratios(results, reference):
    ref = {(r['mode'], tuple(r['shape'])): r for r in results if r['model'] == reference}
    for r in results:
        base = ref[(r['mode'], tuple(r['shape']))]
        assert len(r['seconds']) == 2 and r['peak_bytes'] > 0
        assert r['img_per_s'] == pytest.approx(r['batch'] / statistics.median(r['seconds']))
        assert r['speed_ratio'] == pytest.approx(r['img_per_s'] / base['img_per_s'])
        assert r['memory_ratio'] == pytest.approx(r['peak_bytes'] / base['peak_bytes'])


def test_tool_whole_segmentor_with_baseline(tmp_path, capsys):
    stdout, report = _run_tool(tmp_path, capsys, DEMO_SEG, '--shape', '32', '--batch', '2',
                               '--baseline', 'timm:test_vit', '--saved-activations')
    results = report['results']
    assert [(r['model'], r['mode']) for r in results] == [
        ('upernet_vim-demo_synthetic-ade20k', 'infer'), ('timm:test_vit', 'infer'),
        ('upernet_vim-demo_synthetic-ade20k', 'train'), ('timm:test_vit', 'train')]
    _check_ratios(results, 'timm:test_vit')
    for r in results:
        row = next(line for line in stdout.splitlines()
                   if line.startswith(f"| {r['mode']} | 32x32 | 2 | {r['model']} |"))
        assert f"{r['img_per_s']:.3g}" in row and f"{r['speed_ratio']:.2f}x" in row
        assert f"{r['peak_bytes'] / 2**20:.1f}" in row
    blocks = report['saved_activations']['32x32']
    assert [b['name'] for b in blocks] == [f'layers.{i}' for i in range(4)]
    assert all(b['tokens'] == 4 and b['per_image_bytes'] > 0 and b['budget_bytes'] for b in blocks)
    assert 'VimBlock' in stdout
    png = (tmp_path / 'bench.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
    assert (tmp_path / 'bench.md').read_text().count('\n|') == stdout.count('\n|')


def test_tool_backbones_of_a_detector_in_bf16(tmp_path, capsys):
    """bf16 training on the CPU goes through AutocastOptimWrapper (mmengine's AMP wrapper needs a
    GPU)."""
    _, report = _run_tool(tmp_path, capsys, DEMO_DET, '--backbone-only', '--shape', '64',
                          '--baseline', 'timm:test_vit', 'timm:test_convnext', '--amp', 'bf16',
                          '--mode', 'train')
    results = report['results']
    assert [(r['model'], r['mode']) for r in results] == [
        (name, 'train') for name in ('cascade-mask-rcnn_vim-demo_synthetic-coco', 'timm:test_vit',
                                     'timm:test_convnext')]
    _check_ratios(results, 'timm:test_vit')
    assert results[1]['speed_ratio'] == 1.0 and report['settings']['amp'] == 'bf16'


def test_tool_rejects_fp16_training_on_the_cpu(tmp_path):
    with pytest.raises(SystemExit, match='use --amp bf16 on the CPU'):
        main([DEMO_SEG, '--backbone-only', '--shape', '32', '--amp', 'fp16', '--mode', 'train',
              '--device', 'cpu', '--out', str(tmp_path / 'x')])
