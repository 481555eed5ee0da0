"""An OptimWrapper that runs the forward under ``torch.autocast`` on any device.

mmengine's AmpOptimWrapper refuses to start without a GPU (or NPU/MLU/MUSA). bfloat16 needs no loss
scaling (its exponent range is float32's), so on the CPU autocast around the forward is all that
mixed precision is: the backward and the optimizer step stay as in OptimWrapper. Use it in a
config as ``optim_wrapper=dict(type='AutocastOptimWrapper', dtype='bfloat16', ...)``.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):

    def __init__(self, *args, dtype='bfloat16', device_type='cpu', **kwargs):
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype != torch.bfloat16:
            raise ValueError(f'AutocastOptimWrapper does no loss scaling, so only bfloat16 is safe; '
                             f'got {self.cast_dtype}. Use AmpOptimWrapper (GPU) for float16')
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(self.device_type, self.cast_dtype):
            yield
