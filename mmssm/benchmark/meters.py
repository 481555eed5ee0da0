"""Timing and peak-memory meters that work the same way on a GPU and on the CPU.

Timing synchronises the device around every measured run (CUDA kernels are asynchronous: a
clock read without a synchronise times the launches, not the work). Peak memory is what a step
allocates above what was already allocated when it started (weights, optimizer state, inputs):
``torch.cuda.max_memory_allocated`` on a GPU; on the CPU, which keeps no such counter, the
allocator's own reports to the profiler (``profile_memory=True``: one event per allocation and
free, in order) are summed and their running maximum taken.
"""
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, List

import torch
from torch.profiler import ProfilerActivity, profile


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Seconds per call of each repeat, after warm-up."""
    seconds: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def spread(self) -> float:
        """(slowest - fastest) / median: how far apart the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int,
               on_call: Callable[[], None] = lambda: None) -> Timing:
    """Runs ``fn`` ``warmup`` times untimed, then ``repeats`` times timed one by one."""
    if warmup < 1 or repeats < 1:
        raise ValueError(f'warm-up ({warmup}) and repeats ({repeats}) must be at least 1: the '
                         f'first call pays for allocation, autotuning and compilation')
    for _ in range(warmup):
        fn()
        on_call()
    timing = Timing()
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        timing.seconds.append(time.perf_counter() - start)
        on_call()
    return timing


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated on ``device`` while ``fn`` runs, above what was allocated before."""
    if device.type == 'cuda':
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if device.type != 'cpu':
        raise ValueError(f'peak memory is measured on cuda or cpu devices, not {device.type}')
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cpu = torch._C._autograd.DeviceType.CPU
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]' and e.device_type() == cpu),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak
