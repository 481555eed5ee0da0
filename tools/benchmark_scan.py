"""Time the selective scan's forward and backward on a CUDA GPU.

Runs the Triton kernel, the PyTorch path (backend='torch') and, when ``mamba_ssm`` imports,
its ``selective_scan_fn``, on the issue's three backbone shapes or on one of your own, and
prints a table: median microseconds over many runs (CUDA events, after warm-up), achieved
bandwidth counting every tensor read or written once, that bandwidth as a fraction of a measured
device-to-device copy, and the largest difference of each output from the Triton one. For the
Triton kernel, 'kernels us' is the GPU time of its kernels alone (fwd/bwd, torch.profiler): the
event times also hold the Python and launch time when that is the longer part.

    python tools/benchmark_scan.py                       # the three issue shapes
    python tools/benchmark_scan.py --batch 8 --dim 192 --seqlen 4096 --d-state 1 \\
        --path cross2d --hw 64 64 --groups 4 --shared-u --out-fp32 --no-z
"""
import argparse
import sys
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from mmssm_kernels import ScanPaths, selective_scan

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}


@dataclass
class Shape:
    name: str
    batch: int
    dim: int
    seqlen: int
    d_state: int
    path: str = 'forward'
    hw: Optional[Tuple[int, int]] = None
    groups: int = 0  # 0: B/C (batch, N, L); else (batch, G, N, L)
    z: bool = True
    shared_u: bool = False
    out_fp32: bool = False
    dtype: str = 'bf16'
    # (fwd, bwd) microseconds: the issue's H100 targets and mamba_ssm's CUDA kernel there
    target: Optional[Tuple[float, float]] = None
    mamba_issue: Optional[Tuple[float, float]] = None

    def paths(self):
        if self.path == 'cross2d':
            return ScanPaths.cross2d(self.hw)
        return {'forward': ScanPaths.forward(), 'reverse': ScanPaths.reverse(),
                'bidirectional': ScanPaths.bidirectional()}[self.path]


ISSUE_SHAPES = [
    Shape('Vim-S 512 (1 dir)', 8, 768, 1025, 16, target=(60, 150), mamba_issue=(379, 1337)),
    Shape('VMamba-T stage1 512', 8, 96, 16384, 1, path='cross2d', hw=(128, 128), groups=4,
          z=False, shared_u=True, out_fp32=True, target=(125, 250), mamba_issue=(225, 611)),
    Shape('MambaVision-T stage3', 8, 160, 1024, 8, z=False, target=(10, 25),
          mamba_issue=(35, 137)),
]


def make_inputs(s: Shape, device='cuda'):
    g = torch.Generator(device=device).manual_seed(0)
    dt = DTYPES[s.dtype]
    K = s.paths().num_routes
    total = K * s.dim
    u_ch = s.dim if s.shared_u else total

    def rnd(*shape, scale=1.0):
        x = scale * torch.randn(*shape, generator=g, device=device)
        return x.to(dt).requires_grad_()

    bc = (s.batch, s.d_state, s.seqlen) if not s.groups else (s.batch, s.groups, s.d_state,
                                                              s.seqlen)
    param = dict(device=device, dtype=torch.float32)
    return dict(
        u=rnd(s.batch, u_ch, s.seqlen), delta=rnd(s.batch, total, s.seqlen, scale=0.5),
        A=(-torch.rand(total, s.d_state, generator=g, **param) * 2).requires_grad_(),
        B=rnd(*bc), C=rnd(*bc),
        D=torch.randn(total, generator=g, **param).requires_grad_(),
        z=rnd(s.batch, u_ch, s.seqlen) if s.z else None,
        delta_bias=torch.randn(total, generator=g, **param).requires_grad_())


def nbytes(*tensors):
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def time_us(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for a, b in zip(starts, ends):
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    times = sorted(a.elapsed_time(b) * 1e3 for a, b in zip(starts, ends))
    return times[len(times) // 2]


def kernel_us(fn, reps=5):
    """GPU time of the kernels one call launches (torch.profiler), without the Python and launch
    time between them that CUDA events also count when the host is the slower side."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    return sum(e.device_time_total for e in prof.key_averages()) / reps


def copy_bandwidth(warmup, runs):
    """GB/s of a large device-to-device copy: read once, written once."""
    x = torch.empty(1 << 28, device='cuda', dtype=torch.uint8)
    y = torch.empty_like(x)
    us = time_us(lambda: y.copy_(x), warmup, runs)
    return 2 * x.numel() / us / 1e3


def mamba_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        return None
    return selective_scan_fn


def mamba_call(selective_scan_fn, s: Shape, inputs):
    """mamba_ssm needs the routes laid out by the caller (flips and transposes, outside the
    timed call) and merged after it: only its kernel is timed, one route block per channel."""
    paths = s.paths()
    x = dict(inputs)
    K = paths.num_routes
    if not paths.is_plain_forward:
        order = paths.token_order(s.seqlen, device='cuda')

        def lay(t, shared):
            t = torch.cat([t] * K, 1) if shared else t
            t = t.view(t.shape[0], K, -1, t.shape[-1])
            idx = order.view(1, K, 1, -1).expand_as(t)
            return t.gather(-1, idx).flatten(1, 2).detach().requires_grad_()

        x['u'] = lay(x['u'], s.shared_u)
        x['delta'] = lay(x['delta'], False)
        if x['z'] is not None:
            x['z'] = lay(x['z'], s.shared_u)
        for name in ('B', 'C'):
            t = x[name] if x[name].dim() == 4 else x[name].unsqueeze(1)
            t = torch.cat([t] * (K // t.shape[1]), 1) if t.shape[1] < K else t
            x[name] = lay(t.flatten(1, 2), False).view(t.shape).detach().requires_grad_()
    return lambda: selective_scan_fn(x['u'], x['delta'], x['A'], x['B'], x['C'], x['D'], x['z'],
                                     x['delta_bias'], delta_softplus=True), x


def bench_shape(s: Shape, args):
    inputs = make_inputs(s)
    paths = s.paths()
    out_dtype = torch.float32 if s.out_fp32 else None
    rows = []

    def ours(backend):
        return lambda: selective_scan(**inputs, delta_softplus=True, paths=paths,
                                      out_dtype=out_dtype, backend=backend)

    impls = [('triton', ours('triton'), inputs), ('torch', ours('torch'), inputs)]
    fn = mamba_fn()
    if fn is not None:
        call, mamba_inputs = mamba_call(fn, s, inputs)
        impls.append(('mamba_ssm', call, mamba_inputs))
    reference = None
    for name, call, ins in impls:
        out = call()
        dout = torch.randn_like(out)
        grads_of = [t for t in ins.values() if t is not None and t.requires_grad]
        fwd = time_us(call, args.warmup, args.runs)
        y = call()

        def backward():
            return torch.autograd.grad(y, grads_of, dout, retain_graph=True)

        bwd = time_us(backward, args.warmup, args.runs)
        kernels = (kernel_us(call), kernel_us(backward)) if name == 'triton' else None
        grads = torch.autograd.grad(y, grads_of, dout, retain_graph=True)
        fwd_bytes = nbytes(*ins.values(), out)
        bwd_bytes = nbytes(*ins.values(), dout, *grads)
        if name == 'mamba_ssm' and not paths.is_plain_forward:
            diff = float('nan')  # per-route output, not merged: not comparable
        elif reference is None:
            reference, diff = out.float(), 0.0
        else:
            diff = (out.float() - reference).abs().max().item()
        rows.append((s.name, name, fwd, bwd, kernels, fwd_bytes / fwd / 1e3, bwd_bytes / bwd / 1e3,
                     diff))
        del out, y, grads
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--runs', type=int, default=30)
    p.add_argument('--batch', type=int)
    p.add_argument('--dim', type=int, help='channels per route')
    p.add_argument('--seqlen', type=int)
    p.add_argument('--d-state', type=int, default=16)
    p.add_argument('--path', default='forward',
                   choices=['forward', 'reverse', 'bidirectional', 'cross2d'])
    p.add_argument('--hw', type=int, nargs=2, help='token grid of cross2d')
    p.add_argument('--groups', type=int, default=0, help='B/C groups (0: 3-D B/C)')
    p.add_argument('--no-z', action='store_true')
    p.add_argument('--shared-u', action='store_true', help='one u/z block for all routes')
    p.add_argument('--out-fp32', action='store_true')
    p.add_argument('--dtype', default='bf16', choices=list(DTYPES))
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit('benchmark_scan.py needs a CUDA GPU')
    if args.batch:
        shapes = [Shape('custom', args.batch, args.dim, args.seqlen, args.d_state, args.path,
                        tuple(args.hw) if args.hw else None, args.groups, not args.no_z,
                        args.shared_u, args.out_fp32, args.dtype)]
    else:
        shapes = ISSUE_SHAPES
    copy_gbs = copy_bandwidth(args.warmup, args.runs)
    print(f'{torch.cuda.get_device_name()}: device copy {copy_gbs:.0f} GB/s; median of '
          f'{args.runs} runs after {args.warmup} warm-up')
    head = (f'{"shape":22} {"impl":9} {"fwd us":>9} {"bwd us":>9} {"kernels us":>13} '
            f'{"fwd GB/s":>9} {"bwd GB/s":>9} {"fwd %cp":>7} {"bwd %cp":>7} {"max|diff|":>9} '
            f'{"target us":>11} {"issue mamba":>11}')
    print(head)
    print('-' * len(head))
    for s in shapes:
        for shape, impl, fwd, bwd, kernels, fgb, bgb, diff in bench_shape(s, args):
            target = f'{s.target[0]:.0f}/{s.target[1]:.0f}' if s.target else '-'
            issue = f'{s.mamba_issue[0]:.0f}/{s.mamba_issue[1]:.0f}' if s.mamba_issue else '-'
            kern = f'{kernels[0]:.0f}/{kernels[1]:.0f}' if kernels else '-'
            print(f'{shape:22} {impl:9} {fwd:9.1f} {bwd:9.1f} {kern:>13} {fgb:9.0f} {bgb:9.0f} '
                  f'{100 * fgb / copy_gbs:6.0f}% {100 * bgb / copy_gbs:6.0f}% {diff:9.2e} '
                  f'{target:>11} {issue:>11}')
        torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
