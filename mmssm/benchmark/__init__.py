"""Speed and memory of mmssm models beside timm baselines (tools/analysis_tools/benchmark.py)."""
from .bench import Result, Settings, run
from .saved import (BlockSaved, block_activations, find_blocks, mamba_fused_vim_block_bytes,
                    measure_saved)

__all__ = ['Result', 'Settings', 'run', 'BlockSaved', 'find_blocks', 'mamba_fused_vim_block_bytes',
           'measure_saved', 'block_activations']
